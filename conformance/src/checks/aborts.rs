//! §7.1.6 under repetition: a receiver's client closes its connection and a new receiving
//! request for the same session follows at once.
//!
//! The server must answer the new request as if it had seen the abort first: `o` (the
//! session was closed and forgotten, what sockjs-node does) or `c[1002,"Connection
//! interrupted"]`, never `c[2010,"Another connection still open"]`. A server that notices a
//! closed connection only some time after the next request has been handled passes the
//! single-shot abort checks most of the time; these checks repeat the sequence
//! [`Ctx::abort_rounds`] times on fresh sessions and report every round that got 2010.
//!
//! Each round closes the receiver's socket for real (a FIN, or a reset with `SO_LINGER` 0;
//! the rounds alternate) and sends the next request at once, with no pause, on a new
//! connection, as `HandlingClose.test_abort_*` do. The new request's bytes reach the server
//! after the close did, so a server can always tell. (Not on a keep-alive connection opened
//! before the close: there sockjs-node itself answers 2010 in about a third of the rounds,
//! as it handles a request already on an open socket before the close events of the same
//! event-loop turn.)

use super::ECHO;
use super::transports::expect_prelude;
use crate::check::{
    Check, Ctx, Failure, Outcome, Step, Stream, expect_eq, expect_head_status, expect_status, fail,
    first_answered, heartbeat_chunk, skip,
};
use crate::http::{Conn, Request};
use crate::runner::ABORT_STRESS;
use crate::util::{esc, esc_short, json_quote};

/// Frame texts (without the transport's wrapping).
const OPEN: &str = "o";
const INTERRUPTED: &str = "c[1002,\"Connection interrupted\"]";
const ANOTHER: &str = "c[2010,\"Another connection still open\"]";

/// The receiving transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Receiver {
    Xhr,
    XhrStreaming,
    EventSource,
    HtmlFile,
    Jsonp,
}

impl Receiver {
    const ALL: [Receiver; 5] = [
        Receiver::Xhr,
        Receiver::XhrStreaming,
        Receiver::EventSource,
        Receiver::HtmlFile,
        Receiver::Jsonp,
    ];

    fn name(self) -> &'static str {
        match self {
            Receiver::Xhr => "xhr",
            Receiver::XhrStreaming => "xhr_streaming",
            Receiver::EventSource => "eventsource",
            Receiver::HtmlFile => "htmlfile",
            Receiver::Jsonp => "jsonp",
        }
    }

    fn polling(self) -> bool {
        matches!(self, Receiver::Xhr | Receiver::Jsonp)
    }

    /// What one request is called in failure messages.
    fn what(self) -> &'static str {
        if self.polling() { "poll" } else { "stream" }
    }

    /// The receiving request on session `s`.
    fn request(self, s: &crate::check::Session) -> Request {
        match self {
            Receiver::Xhr => Request::new("POST", &s.url("xhr")),
            Receiver::XhrStreaming => Request::new("POST", &s.url("xhr_streaming")),
            Receiver::EventSource => Request::new("GET", &s.url("eventsource")),
            Receiver::HtmlFile => Request::new("GET", &s.url("htmlfile?c=cb")),
            Receiver::Jsonp => Request::new("GET", &s.url("jsonp?c=cb")),
        }
    }

    /// Frame text `f` as this transport writes it (§8).
    fn frame(self, f: &str) -> Vec<u8> {
        match self {
            Receiver::Xhr | Receiver::XhrStreaming => format!("{f}\n"),
            Receiver::EventSource => format!("data: {f}\r\n\r\n"),
            Receiver::HtmlFile => format!("<script>\np({});\n</script>\r\n", json_quote(f)),
            Receiver::Jsonp => format!("/**/cb({});\r\n", json_quote(f)),
        }
        .into_bytes()
    }

    fn summary(self) -> String {
        let held = if self.polling() {
            "a held poll (a concurrent poll got 2010)"
        } else {
            "an open stream (past its o)"
        };
        format!(
            "{}: {held} has its socket closed (FIN or RST) and a new {} on a new connection follows at once: o or c[1002...], never 2010, in each of N rounds (default 200)",
            self.name(),
            self.what()
        )
    }
}

/// How a round closes the attached receiver's socket; the rounds alternate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// An orderly close: FIN.
    Fin,
    /// `SO_LINGER` 0: RST, as when the client process dies.
    Reset,
}

impl Close {
    const ALL: [Close; 2] = [Close::Fin, Close::Reset];

    fn label(self) -> &'static str {
        match self {
            Close::Fin => "FIN",
            Close::Reset => "RST",
        }
    }

    fn close(self, conn: Conn<crate::tls::ClientStream>) {
        match self {
            Close::Fin => conn.close(),
            Close::Reset => conn.reset(),
        }
    }
}

/// What the request after the close got.
enum Verdict {
    /// `o` or the 1002 close frame.
    Good,
    /// The 2010 frame (these bytes): the abort was not seen first.
    Another(Vec<u8>),
}

pub(crate) fn checks() -> Vec<Check> {
    Receiver::ALL
        .iter()
        .map(|&r| {
            Check::new(
                format!("{ABORT_STRESS}{}", r.name()),
                "7.1.6",
                r.summary(),
                move |ctx: &Ctx| stress(ctx, r),
            )
        })
        .collect()
}

fn stress(ctx: &Ctx, r: Receiver) -> Outcome {
    let n = ctx.abort_rounds;
    if n == 0 {
        return Err(skip("abort stress rounds set to 0"));
    }
    let mut tried = [0usize; Close::ALL.len()];
    let mut another = [0usize; Close::ALL.len()];
    let mut first: Option<(usize, Close, Vec<u8>)> = None;
    for i in 0..n {
        let k = i % Close::ALL.len();
        let how = Close::ALL[k];
        tried[k] += 1;
        let what = format!("round {} of {n} (closed with {})", i + 1, how.label());
        let verdict = if r.polling() {
            polling_round(ctx, r, how)
        } else {
            streaming_round(ctx, r, how)
        }
        .step(&what)?;
        if let Verdict::Another(got) = verdict {
            another[k] += 1;
            first.get_or_insert((i, how, got));
        }
    }
    let Some((i, how, got)) = first else {
        return Ok(());
    };
    let total: usize = another.iter().sum();
    let by_close: Vec<String> = Close::ALL
        .iter()
        .enumerate()
        .map(|(k, c)| format!("{} {}/{}", c.label(), another[k], tried[k]))
        .collect();
    Err(fail(format!(
        "{total} of {n} rounds got 2010 on the {t} {what} sent right after the attached {what}'s \
         socket was closed (the server handled it before noticing the abort; expected \"{o}\" or \
         \"{c}\"); by close: {by_close}; first in round {round} ({close}): \"{got}\"",
        t = r.name(),
        what = r.what(),
        o = esc(&r.frame(OPEN)),
        c = esc(&r.frame(INTERRUPTED)),
        by_close = by_close.join(", "),
        round = i + 1,
        close = how.label(),
        got = esc_short(&got, 120),
    )))
}

/// Judges what the request after the close got.
fn verdict(r: Receiver, got: Vec<u8>) -> Result<Verdict, Failure> {
    if got == r.frame(OPEN) || got == r.frame(INTERRUPTED) {
        Ok(Verdict::Good)
    } else if got == r.frame(ANOTHER) {
        Ok(Verdict::Another(got))
    } else {
        Err(fail(format!(
            "{} after the close: expected \"{}\" or \"{}\", got \"{}\"",
            r.what(),
            esc(&r.frame(OPEN)),
            esc(&r.frame(INTERRUPTED)),
            esc_short(&got, 120)
        )))
    }
}

/// xhr / jsonp: open the session, hold a poll, prove it attached with a concurrent poll
/// that gets 2010, close the held poll's socket and poll again at once.
fn polling_round(ctx: &Ctx, r: Receiver, how: Close) -> Result<Verdict, Failure> {
    let s = ctx.session(ECHO);
    let req = r.request(&s);
    let mut held = ctx.connect().step("connecting")?;
    let opened = held.roundtrip(&req).step("opening poll")?;
    expect_status("opening poll", &opened, 200)?;
    expect_eq("opening poll", r.frame(OPEN), &opened.body)?;
    held.send(&req).step("held poll")?;
    let mut other = ctx.connect().step("connecting")?;
    other.send(&req).step("concurrent poll")?;
    // Whichever poll the server took second answers 2010 at once; the other one is held.
    first_answered(&mut held, &mut other, ctx.io_timeout)?;
    let resp = other.read_response(&req.method).step("concurrent poll")?;
    expect_status("concurrent poll", &resp, 200)?;
    expect_eq("concurrent poll", r.frame(ANOTHER), &resp.body)?;
    how.close(held);
    let mut conn = ctx.connect().step("connecting after the close")?;
    let resp = conn.roundtrip(&req).step("poll after the close")?;
    expect_status("poll after the close", &resp, 200)?;
    verdict(r, resp.body)
}

/// xhr_streaming / eventsource / htmlfile: open a stream and read its `o` (the stream is
/// then the session's receiver), close its socket and open another stream at once.
fn streaming_round(ctx: &Ctx, r: Receiver, how: Close) -> Result<Verdict, Failure> {
    let s = ctx.session(ECHO);
    let req = r.request(&s);
    let mut first = ctx.open(&req).step("first stream")?;
    expect_head_status("first stream", &first.head, 200)?;
    expect_prelude(&mut first, "first stream", r.name(), "cb")?;
    let got = first.chunk().step("first stream open frame")?;
    expect_eq("first stream open frame", r.frame(OPEN), got)?;
    how.close(first.conn);
    let mut conn = ctx.connect().step("connecting after the close")?;
    conn.send(&req).step("stream after the close")?;
    let head = conn.read_head().step("stream after the close")?;
    expect_head_status("stream after the close", &head, 200)?;
    let mut second = Stream {
        conn,
        head,
        heartbeat: heartbeat_chunk(&req.path),
        heartbeat_delay: ctx.heartbeat,
    };
    expect_prelude(&mut second, "stream after the close", r.name(), "cb")?;
    let got = second.chunk().step("stream after the close")?;
    verdict(r, got)
}
