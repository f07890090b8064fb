//! WebSocket clients: RFC 6455 through tungstenite, and the hixie-76 key challenge.

use std::io;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use tungstenite::error::ProtocolError;
use tungstenite::{Message, WebSocket};

use crate::check::{Ctx, Failure, Outcome, expect_eq, fail, patience};
use crate::tls::ClientStream;
use crate::util::esc_short;

/// What a read from a WebSocket produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A close frame (code and reason, if any).
    Close(Option<(u16, String)>),
    /// The connection ended without (more) frames; how.
    Closed(String),
}

impl WsEvent {
    /// Short description for failure messages.
    pub fn describe(&self) -> String {
        match self {
            WsEvent::Text(t) => format!("text \"{}\"", esc_short(t.as_bytes(), 120)),
            WsEvent::Binary(b) => format!("binary \"{}\"", esc_short(b, 120)),
            WsEvent::Close(Some((c, r))) => format!("close frame {c} \"{r}\""),
            WsEvent::Close(None) => "close frame without code".to_string(),
            WsEvent::Closed(how) => format!("connection closed ({how})"),
        }
    }
}

/// An RFC 6455 client connection.
#[derive(Debug)]
pub struct Ws {
    inner: WebSocket<ClientStream>,
    /// The server's heartbeat delay, if known (for [`patience`]).
    heartbeat: Option<Duration>,
    /// Whether a text `h` is a SockJS heartbeat that [`recv`](Ws::recv) passes over: on a
    /// SockJS WebSocket the server may write one whenever its heartbeat delay passes
    /// (§9.2), on a raw one (§9.3) `h` is a message like any other.
    skip_heartbeats: bool,
}

impl Ws {
    /// Connects to `ws://host` (or `wss://`) + `path` (path includes the base prefix), a
    /// raw WebSocket: every text message is reported, `h` included. For the raw
    /// `P/websocket` (§9.3), and for checks about the SockJS heartbeat itself.
    pub fn connect(ctx: &Ctx, path: &str) -> Result<Ws, Failure> {
        let conn = ctx.connect()?;
        let (stream, leftover) = conn.into_stream();
        if !leftover.is_empty() {
            return Err(fail("unexpected bytes before the handshake"));
        }
        let url = format!("{}://{}{path}", ctx.ws_scheme(), ctx.host);
        match tungstenite::client::client(url.as_str(), stream) {
            Ok((inner, _resp)) => Ok(Ws {
                inner,
                heartbeat: ctx.heartbeat,
                skip_heartbeats: false,
            }),
            Err(tungstenite::HandshakeError::Failure(e)) => {
                Err(fail(format!("WebSocket handshake to {path} failed: {e}")))
            }
            Err(tungstenite::HandshakeError::Interrupted(_)) => {
                Err(fail(format!("WebSocket handshake to {path} timed out")))
            }
        }
    }

    /// Connects a SockJS WebSocket (`/S/I/websocket`, §9.2): [`recv`](Ws::recv), and the
    /// reads built on it, pass over text `h` heartbeats as they pass over pings, so that a
    /// heartbeat written while a check waits for a frame does not fail it.
    pub fn connect_sockjs(ctx: &Ctx, path: &str) -> Result<Ws, Failure> {
        let mut ws = Self::connect(ctx, path)?;
        ws.skip_heartbeats = true;
        Ok(ws)
    }

    /// Sends a text message.
    pub fn send(&mut self, text: &str) -> Outcome {
        self.inner.send(Message::text(text)).map_err(|e| {
            fail(format!(
                "sending \"{}\": {e}",
                esc_short(text.as_bytes(), 60)
            ))
        })
    }

    /// How long a read may pass over control frames (see [`patience`]).
    fn patience(&self) -> Duration {
        patience(
            self.inner.get_ref().tcp().read_timeout().ok().flatten(),
            self.heartbeat,
        )
    }

    /// Fails once control frames (and heartbeats, where skipped) alone have come for
    /// longer than [`patience`].
    fn only_control_frames(start: Instant, limit: Duration, skipped: usize) -> Outcome {
        if start.elapsed() > limit {
            return Err(fail(format!(
                "only heartbeats, pings or pongs ({skipped}) for {} ms, no message",
                start.elapsed().as_millis()
            )));
        }
        Ok(())
    }

    /// Reads the next event, answering and skipping pings and pongs, and on a SockJS
    /// WebSocket ([`connect_sockjs`](Ws::connect_sockjs)) text `h` heartbeats too, for at
    /// most [`patience`].
    pub fn recv(&mut self) -> Result<WsEvent, Failure> {
        let (start, limit, mut skipped) = (Instant::now(), self.patience(), 0);
        loop {
            match self.inner.read() {
                Ok(Message::Text(t)) if self.skip_heartbeats && t.as_str() == "h" => {
                    skipped += 1;
                    Self::only_control_frames(start, limit, skipped)?;
                }
                Ok(Message::Text(t)) => return Ok(WsEvent::Text(t.to_string())),
                Ok(Message::Binary(b)) => return Ok(WsEvent::Binary(b.to_vec())),
                Ok(Message::Close(f)) => {
                    return Ok(WsEvent::Close(
                        f.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ));
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {
                    skipped += 1;
                    Self::only_control_frames(start, limit, skipped)?;
                }
                Err(e) => return classify(e),
            }
        }
    }

    /// Reads the next event, reporting pings instead of skipping them, and every text
    /// message, heartbeat `h` included (for the heartbeat checks).
    pub fn recv_with_pings(&mut self) -> Result<Option<WsEvent>, Failure> {
        // A loop, not a recursion: a server may send any number of unsolicited pongs.
        let (start, limit, mut skipped) = (Instant::now(), self.patience(), 0);
        loop {
            return match self.inner.read() {
                Ok(Message::Ping(_)) => Ok(None),
                Ok(Message::Text(t)) => Ok(Some(WsEvent::Text(t.to_string()))),
                Ok(Message::Binary(b)) => Ok(Some(WsEvent::Binary(b.to_vec()))),
                Ok(Message::Close(f)) => Ok(Some(WsEvent::Close(
                    f.map(|f| (u16::from(f.code), f.reason.to_string())),
                ))),
                Ok(Message::Pong(_) | Message::Frame(_)) => {
                    skipped += 1;
                    Self::only_control_frames(start, limit, skipped)?;
                    continue;
                }
                Err(e) => classify(e).map(Some),
            };
        }
    }

    /// Fails unless the next event (heartbeats aside on a SockJS WebSocket) is the text
    /// message `expected`.
    pub fn expect_text(&mut self, what: &str, expected: &str) -> Outcome {
        match self.recv()? {
            WsEvent::Text(t) => expect_eq(what, expected, t),
            other => Err(fail(format!(
                "{what}: expected text \"{}\", got {}",
                esc_short(expected.as_bytes(), 120),
                other.describe()
            ))),
        }
    }

    /// Reads until the connection is closed by the server; fails on any text message or a
    /// timeout. Returns the close frame's code and reason, if one came.
    pub fn expect_closed(&mut self, what: &str) -> Result<Option<(u16, String)>, Failure> {
        let mut frame = None;
        loop {
            match self.recv() {
                Ok(WsEvent::Close(f)) => frame = f,
                Ok(WsEvent::Closed(_)) => return Ok(frame),
                Ok(other) => {
                    return Err(fail(format!(
                        "{what}: expected the socket to close, got {}",
                        other.describe()
                    )));
                }
                Err(e) => return Err(fail(format!("{what}: {}", e.reason))),
            }
        }
    }

    /// Sets the read timeout of the socket.
    pub fn set_read_timeout(&self, d: std::time::Duration) -> Outcome {
        self.inner
            .get_ref()
            .tcp()
            .set_read_timeout(Some(d))
            .map_err(|e| fail(format!("setting read timeout: {e}")))
    }

    /// Closes the connection politely (errors ignored).
    pub fn close(mut self) {
        let _ = self.inner.close(None);
        let _ = self.inner.flush();
    }
}

fn classify(e: tungstenite::Error) -> Result<WsEvent, Failure> {
    use tungstenite::Error as E;
    match e {
        E::ConnectionClosed => Ok(WsEvent::Closed("closing handshake done".into())),
        E::AlreadyClosed => Ok(WsEvent::Closed("already closed".into())),
        E::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            Ok(WsEvent::Closed("TCP closed without a close frame".into()))
        }
        E::Io(io) => match io.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Err(fail("timed out waiting for a WebSocket message"))
            }
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe => Ok(WsEvent::Closed(format!("TCP {}", io.kind()))),
            _ => Err(fail(format!("WebSocket read error: {io}"))),
        },
        other => Err(fail(format!("WebSocket error: {other}"))),
    }
}

/// The hixie-76 number of a `Sec-WebSocket-Key1/2` value: its digits as a number divided by
/// its count of spaces. `None` if there are no spaces, the division is not exact, or the
/// result does not fit 32 bits.
pub fn hixie76_key_number(key: &str) -> Option<u32> {
    let digits: String = key.chars().filter(char::is_ascii_digit).collect();
    let spaces = key.chars().filter(|c| *c == ' ').count() as u64;
    let n: u64 = digits.parse().ok()?;
    if spaces == 0 || n % spaces != 0 {
        return None;
    }
    u32::try_from(n / spaces).ok()
}

/// The hixie-76 challenge answer: MD5(n1 ‖ n2 ‖ key3), numbers big-endian.
pub fn hixie76_answer(key1: &str, key2: &str, key3: &[u8; 8]) -> Option<[u8; 16]> {
    let n1 = hixie76_key_number(key1)?;
    let n2 = hixie76_key_number(key2)?;
    let mut h = Md5::new();
    h.update(n1.to_be_bytes());
    h.update(n2.to_be_bytes());
    h.update(key3);
    Some(h.finalize().into())
}

/// A scripted WebSocket server for unit tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod test_server {
    use std::net::TcpStream;
    use std::time::Duration;

    use tungstenite::WebSocket;

    use crate::check::Ctx;

    /// Serves one WebSocket connection on a loopback port, running `script` on it after
    /// the handshake; returns the context of a client for it, whose read timeout is
    /// 200 ms and heartbeat delay 100 ms (so its patience is 300 ms).
    pub(crate) fn serve(script: impl FnOnce(&mut WebSocket<TcpStream>) + Send + 'static) -> Ctx {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            script(&mut tungstenite::accept(tcp).unwrap());
        });
        Ctx {
            host,
            prefix: String::new(),
            tls: None,
            io_timeout: Duration::from_millis(200),
            heartbeat: Some(Duration::from_millis(100)),
            disconnect: None,
            abort_rounds: 0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hixie76_spec_vector() {
        assert_eq!(
            hixie76_key_number("4 @1  46546xW%0l 1 5"),
            Some(829_309_203)
        );
        assert_eq!(hixie76_key_number("12998 5 Y3 1  .P00"), Some(259_970_620));
        assert_eq!(
            hixie76_answer("4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", b"aaaaaaaa").unwrap(),
            [
                0xca, 0x34, 0x00, 0xd8, 0xa5, 0x08, 0x47, 0x97, 0x2c, 0xd5, 0x71, 0x5a, 0xba, 0xbf,
                0x43, 0x7b
            ]
        );
    }

    #[test]
    fn hixie76_rejects_bad_keys() {
        assert_eq!(hixie76_key_number("12345"), None); // no spaces
        assert_eq!(hixie76_key_number("1 2"), Some(12));
        assert_eq!(hixie76_key_number("1 0 1"), None); // 101 / 2 not exact
        assert_eq!(hixie76_key_number("99999999999 "), None); // too large
    }

    /// A loopback WebSocket server that sends `texts`, then (if `forever`) an `h` every
    /// 20 ms until the client goes away.
    fn serve(texts: &'static [&'static str], forever: bool) -> Ctx {
        test_server::serve(move |ws| {
            for t in texts {
                ws.send(Message::text(*t)).unwrap();
            }
            while forever && ws.send(Message::text("h")).is_ok() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = ws.close(None);
            let _ = ws.flush();
        })
    }

    #[test]
    fn sockjs_reads_pass_over_heartbeats_raw_reads_keep_them() {
        const TEXTS: &[&str] = &["o", "h", "h", "a[\"x\"]"];
        let ctx = serve(TEXTS, false);
        let mut ws = Ws::connect_sockjs(&ctx, "/s/websocket").unwrap();
        ws.expect_text("open", "o").unwrap();
        ws.expect_text("past two heartbeats", "a[\"x\"]").unwrap();
        let ctx = serve(TEXTS, false);
        let mut ws = Ws::connect(&ctx, "/websocket").unwrap();
        ws.expect_text("open", "o").unwrap();
        assert_eq!(ws.recv().unwrap(), WsEvent::Text("h".into()));
        let ctx = serve(TEXTS, false);
        let mut ws = Ws::connect_sockjs(&ctx, "/s/websocket").unwrap();
        ws.expect_text("open", "o").unwrap();
        assert_eq!(
            ws.recv_with_pings().unwrap(),
            Some(WsEvent::Text("h".into()))
        );
    }

    #[test]
    fn heartbeats_alone_are_passed_over_for_a_bounded_time() {
        let ctx = serve(&["o"], true);
        let mut ws = Ws::connect_sockjs(&ctx, "/s/websocket").unwrap();
        ws.expect_text("open", "o").unwrap();
        let start = Instant::now();
        let e = ws.recv().unwrap_err();
        assert!(e.reason.contains("only heartbeats"), "{}", e.reason);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn accept_key_vector() {
        assert_eq!(
            tungstenite::handshake::derive_accept_key(b"x3JJHMbDL1EzLkh9GBhXDw=="),
            "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
        );
    }
}
