//! Timing rules (§7.1.3 heartbeats, §7.1.5 disconnect delay), run only when the server's
//! delays are given.

use std::time::{Duration, Instant};

use super::ECHO;
use super::sessions::{C3000, two_polls};
use super::transports::{expect_prelude, receiver_request, wrap_frame};
use crate::check::{
    Check, Ctx, Needs, Outcome, Step, ensure, expect_head_status, expect_response, expect_status,
    fail, service, skip, sleep,
};
use crate::http::Request;
use crate::ws::{Ws, WsEvent};

pub(crate) fn checks() -> Vec<Check> {
    vec![
        Check::new(
            "s7_1_3_heartbeat_xhr_polling",
            "7.1",
            "a held poll answers h\\n after about the heartbeat delay",
            |ctx: &Ctx| {
                let hb = ctx.heartbeat()?;
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                let mut c = ctx.send_only(&Request::new("POST", &s.url("xhr")))?;
                let start = Instant::now();
                c.set_read_timeout(upper(hb) + Duration::from_secs(1))?;
                let r = c.read_response("POST").step("held POST xhr")?;
                let took = start.elapsed();
                expect_response("held POST xhr", &r, 200, b"h\n")?;
                within("heartbeat", took, hb)
            },
        )
        .needs(Needs::Heartbeat),
        Check::new(
            "s7_1_3_heartbeat_xhr_streaming",
            "7.1",
            "an idle xhr_streaming gets an h\\n chunk after about the heartbeat delay",
            |ctx: &Ctx| streaming_heartbeat(ctx, "xhr_streaming"),
        )
        .needs(Needs::Heartbeat),
        Check::new(
            "s7_1_3_heartbeat_rearmed_by_a_write",
            "7.1",
            "the heartbeat comes after the heartbeat delay with nothing written: a frame written at half the delay puts the h a whole delay after it",
            heartbeat_rearmed,
        )
        .needs(Needs::Heartbeat),
        Check::new(
            "s7_1_3_heartbeat_eventsource",
            "7.1",
            "an idle eventsource gets data: h after about the heartbeat delay",
            |ctx: &Ctx| streaming_heartbeat(ctx, "eventsource"),
        )
        .needs(Needs::Heartbeat),
        Check::new(
            "s7_1_3_heartbeat_htmlfile",
            "7.1",
            "an idle htmlfile gets the h frame in its script after about the heartbeat delay",
            |ctx: &Ctx| streaming_heartbeat(ctx, "htmlfile"),
        )
        .needs(Needs::Heartbeat),
        Check::new(
            "s7_1_3_heartbeat_jsonp",
            "7.1",
            "a held jsonp poll answers the h frame after about the heartbeat delay",
            |ctx: &Ctx| {
                let hb = ctx.heartbeat()?;
                let s = ctx.session(ECHO);
                let open = ctx.get(&s.url("jsonp?c=cb"), &[]).step("GET jsonp")?;
                let body = wrap_frame("jsonp", "cb", "o");
                expect_response("GET jsonp", &open, 200, body.as_bytes())?;
                let mut c = ctx.send_only(&receiver_request(&s, "jsonp", "cb"))?;
                let start = Instant::now();
                c.set_read_timeout(upper(hb) + Duration::from_secs(1))?;
                let r = c.read_response("GET").step("held GET jsonp")?;
                let took = start.elapsed();
                let body = wrap_frame("jsonp", "cb", "h");
                expect_response("held GET jsonp", &r, 200, body.as_bytes())?;
                within("heartbeat", took, hb)
            },
        )
        .needs(Needs::Heartbeat),
        Check::new(
            "s7_1_3_heartbeat_after_2010",
            "7.1",
            "a 2010 leaves the first receiver attached: it still gets its heartbeat",
            |ctx: &Ctx| {
                let hb = ctx.heartbeat()?;
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                let start = Instant::now();
                let mut c = two_polls(ctx, &s)?;
                c.set_read_timeout(upper(hb) + Duration::from_secs(1))?;
                let r = c.read_response("POST").step("first POST xhr")?;
                expect_response("first POST xhr", &r, 200, b"h\n")?;
                within("heartbeat", start.elapsed(), hb)
            },
        )
        .needs(Needs::Heartbeat),
        Check::new(
            "s9_2_websocket_heartbeat",
            "9.2",
            "an idle SockJS websocket gets the heartbeat frame, text h, after about the delay",
            |ctx: &Ctx| {
                let hb = ctx.heartbeat()?;
                let s = ctx.session(ECHO);
                // From before the upgrade: the server arms its timer after it.
                let start = Instant::now();
                // Connected as a raw WebSocket, whose reads keep text `h`: the heartbeat
                // is what this check waits for.
                let mut ws = Ws::connect(ctx, &s.url("websocket"))?;
                ws.expect_text("open frame", "o")?;
                ws.set_read_timeout(upper(hb) + Duration::from_secs(1))?;
                match ws.recv_with_pings()? {
                    Some(WsEvent::Text(t)) if t == "h" => {}
                    // sockjs-node 0.3.16+ pings instead (PROTOCOL.md §9.2): the client's
                    // WebSocket never sees a ping, so it gets no heartbeat frame.
                    None => return Err(fail("expected the heartbeat frame, text h, got a ping")),
                    Some(other) => {
                        return Err(fail(format!(
                            "expected the heartbeat frame, text h, got {}",
                            other.describe()
                        )));
                    }
                }
                within("heartbeat", start.elapsed(), hb)?;
                ws.close();
                Ok(())
            },
        )
        .needs(Needs::Heartbeat),
        Check::new(
            "s7_1_5_session_kept_before_disconnect",
            "7.1",
            "without a receiver the session lives until the disconnect delay: a send a bit before is 204",
            |ctx: &Ctx| {
                let d = ctx.disconnect()?;
                if before(d) < d / 2 {
                    return Err(crate::check::skip(format!(
                        "a disconnect delay of {} ms leaves no room to send a bit before it",
                        d.as_millis()
                    )));
                }
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                sleep(before(d));
                let r = ctx.xhr_send(&s, "[\"x\"]").step("POST xhr_send before the delay")?;
                expect_response("POST xhr_send a bit before the disconnect delay", &r, 204, b"")?;
                ctx.expect_xhr("POST xhr", &s, "a[\"x\"]\n")
            },
        )
        .needs(Needs::Disconnect),
        Check::new(
            "s7_1_5_session_expires_after_disconnect",
            "7.1",
            "after the disconnect delay the session is gone: send is 404, the id opens a fresh session",
            |ctx: &Ctx| {
                let d = ctx.disconnect()?;
                let s = ctx.session(ECHO);
                ctx.open_xhr(&s)?;
                sleep(after(d));
                let r = ctx.xhr_send(&s, "[\"x\"]").step("POST xhr_send after the delay")?;
                expect_status("POST xhr_send a bit after the disconnect delay", &r, 404)?;
                ctx.expect_xhr("POST xhr on the expired id", &s, "o\n")
            },
        )
        .needs(Needs::Disconnect),
        Check::new(
            "s7_1_4_detach_restarts_disconnect_timer",
            "7.1.4",
            "each detach restarts the disconnect timer: polls every 0.6 x delay keep the session past 2 x delay; 1.5 x delay after the last it is gone",
            detach_restarts_disconnect_timer,
        )
        .needs(Needs::Disconnect),
        Check::new(
            "s7_1_5_closed_session_forgotten",
            "7.1",
            "a closed session repeats its close frame until the disconnect delay, then the id is new",
            |ctx: &Ctx| {
                let d = ctx.disconnect()?;
                let s = ctx.session(service::CLOSE);
                ctx.open_xhr(&s)?;
                ctx.expect_xhr("second POST xhr", &s, C3000)?;
                sleep(after(d));
                ctx.expect_xhr("POST xhr after the disconnect delay", &s, "o\n")
            },
        )
        .needs(Needs::Disconnect),
        Check::new(
            "s7_1_2_closing_poll_restarts_the_disconnect_timer",
            "7.1.2",
            "each poll of a closed session restarts its disconnect timer: polls a little under the delay apart get the close frame for well past it",
            |ctx: &Ctx| {
                let d = ctx.disconnect()?;
                // Two gaps just under the delay must outlast it, or a timer that is never
                // restarted would pass too.
                if before(d) * 2 <= d {
                    return Err(skip(format!(
                        "a disconnect delay of {} ms is too short for this check",
                        d.as_millis()
                    )));
                }
                let s = ctx.session(service::CLOSE);
                ctx.open_xhr(&s)?;
                ctx.expect_xhr("second POST xhr", &s, C3000)?;
                // Two gaps just under the delay: the session outlives it, as only a timer
                // that each poll restarts allows.
                for n in 1..=2 {
                    sleep(before(d));
                    ctx.expect_xhr(&format!("POST xhr {n} on the closed session"), &s, C3000)?;
                }
                Ok(())
            },
        )
        .needs(Needs::Disconnect),
        Check::new(
            "s7_1_5_receiver_keeps_session",
            "7.1",
            "a session with an attached receiver does not expire: a stream held past the delay still works",
            |ctx: &Ctx| {
                let d = ctx.disconnect()?;
                let s = ctx.session(ECHO);
                let mut st = ctx.xhr_streaming(&s, &[])?;
                expect_head_status("POST xhr_streaming", &st.head, 200)?;
                expect_prelude(&mut st, "POST xhr_streaming", "xhr_streaming", "")?;
                st.expect_chunk("open frame", "o\n")?;
                st.set_read_timeout(after(d) + Duration::from_secs(2))?;
                sleep(after(d));
                let r = ctx.xhr_send(&s, "[\"x\"]").step("POST xhr_send")?;
                expect_response("POST xhr_send with a receiver attached past the delay", &r, 204, b"")?;
                // Heartbeats may have been written meanwhile: expect_chunk passes over them.
                st.expect_chunk("stream", "a[\"x\"]\n")
            },
        )
        .needs(Needs::Disconnect),
    ]
}

/// An idle streaming receiver of `transport` (xhr_streaming, eventsource, htmlfile) gets
/// the `h` frame, in that transport's framing, after about the heartbeat delay.
fn streaming_heartbeat(ctx: &Ctx, transport: &str) -> Outcome {
    let hb = ctx.heartbeat()?;
    let s = ctx.session(ECHO);
    let request = receiver_request(&s, transport, "cb");
    let what = format!("{} {transport}", request.method);
    // From before the request: the server arms its timer after it.
    let start = Instant::now();
    let mut st = ctx.open(&request)?;
    expect_head_status(&what, &st.head, 200)?;
    expect_prelude(&mut st, &what, transport, "cb")?;
    st.expect_chunk("open frame", wrap_frame(transport, "cb", "o"))?;
    st.set_read_timeout(upper(hb) + Duration::from_secs(1))?;
    st.expect_chunk("heartbeat chunk", wrap_frame(transport, "cb", "h"))?;
    within("heartbeat", start.elapsed(), hb)
}

/// §7.1.3: `h` is written when nothing has been written to the receiver for the
/// heartbeat delay, so a message frame restarts the wait. On xhr_streaming: after `o`,
/// wait half the delay and have a message echoed; the `h` must then come a whole delay
/// after the message frame (less the measuring slack), not on the timer armed at `o`
/// (half a delay after the message).
fn heartbeat_rearmed(ctx: &Ctx) -> Outcome {
    let hb = ctx.heartbeat()?;
    if hb < SLACK * 4 {
        return Err(crate::check::skip(format!(
            "a heartbeat delay of {} ms is too short to tell a re-armed timer from one left running (at least {} ms)",
            hb.as_millis(),
            (SLACK * 4).as_millis()
        )));
    }
    let s = ctx.session(ECHO);
    let mut st = ctx.xhr_streaming(&s, &[])?;
    expect_head_status("POST xhr_streaming", &st.head, 200)?;
    expect_prelude(&mut st, "POST xhr_streaming", "xhr_streaming", "")?;
    st.expect_chunk("open frame", "o\n")?;
    let opened = Instant::now();
    sleep(hb / 2);
    // From before the send: the server writes the message frame (and re-arms its timer)
    // after it.
    let written = Instant::now();
    ctx.send_ok(&s, "[\"x\"]")?;
    // Read the message without passing over a heartbeat: none may come before it.
    let got = st.chunk().step("message frame")?;
    crate::check::expect_eq("message frame (no heartbeat before it)", "a[\"x\"]\n", got)?;
    st.set_read_timeout(upper(hb) + Duration::from_secs(1))?;
    let got = st.chunk().step("heartbeat after the message")?;
    let took = written.elapsed();
    crate::check::expect_eq("chunk after the message", "h\n", got)?;
    ensure(took + SLACK >= hb, || {
        format!(
            "h came {} ms after the message frame ({} ms after o), expected a whole heartbeat delay ({} ms) after the last frame written: the heartbeat timer was not restarted by the write",
            took.as_millis(),
            opened.elapsed().as_millis(),
            hb.as_millis()
        )
    })?;
    within("heartbeat after the message frame", took, hb)
}

/// §7.1.4-5: the disconnect timer starts at each detach and an attach stops it. A poll
/// every 0.6 x the delay (a message queued first, so each poll detaches at once) keeps
/// the session alive for over twice the delay, each send answered 204; a server that
/// counts from the first detach (or from the session's start) has forgotten it by then.
/// Then, a while past the delay after the last detach, the session is gone.
fn detach_restarts_disconnect_timer(ctx: &Ctx) -> Outcome {
    let d = ctx.disconnect()?;
    let s = ctx.session(ECHO);
    ctx.open_xhr(&s)?;
    let start = Instant::now();
    let mut round = 0;
    while start.elapsed() < d * 2 {
        round += 1;
        sleep(d.mul_f64(0.6));
        let what = format!(
            "POST xhr_send {} ms after the first detach, 0.6 x delay after the last",
            start.elapsed().as_millis()
        );
        let r = ctx.xhr_send(&s, &format!("[\"{round}\"]")).step(&what)?;
        expect_response(&what, &r, 204, b"")?;
        ctx.expect_xhr("POST xhr", &s, &format!("a[\"{round}\"]\n"))?;
    }
    sleep(after(d));
    let r = ctx
        .xhr_send(&s, "[\"x\"]")
        .step("POST xhr_send after the delay")?;
    expect_status(
        "POST xhr_send a bit after the delay since the last detach",
        &r,
        404,
    )?;
    ctx.expect_xhr("POST xhr on the expired id", &s, "o\n")
}

/// Upper bound for an event expected after `d`.
fn upper(d: Duration) -> Duration {
    d + (d / 2).max(Duration::from_millis(500))
}

/// Slack for a timer measured from the client: the frame that started it reaches us a
/// little after the server armed it, and a loaded machine (a CI runner running tests in
/// parallel) may hold either end back a while.
const SLACK: Duration = Duration::from_millis(200);

/// Just before the disconnect delay: `d` less a fifth of it (at least twice [`SLACK`]:
/// the server's write of the `o` that armed its timer, the client's wake-up and a new
/// connection all come out of it). A timer cannot fire early, so the session must still be
/// there.
fn before(d: Duration) -> Duration {
    d.saturating_sub((d / 5).max(SLACK * 2))
}

/// A bit after the disconnect delay.
fn after(d: Duration) -> Duration {
    d + (d / 2).max(Duration::from_millis(500))
}

/// Fails unless `took` is within the tolerance around `expected`: no sooner than
/// `expected` less [`SLACK`] (a timer cannot fire early), no later than
/// [`upper`].
fn within(what: &str, took: Duration, expected: Duration) -> Outcome {
    let lo = expected.saturating_sub(SLACK);
    let hi = upper(expected);
    ensure(took >= lo && took <= hi, || {
        format!(
            "{what} came after {} ms, expected about {} ms (accepted {}..={} ms)",
            took.as_millis(),
            expected.as_millis(),
            lo.as_millis(),
            hi.as_millis()
        )
    })
}
