//! WebSocket sessions on the load generator's own client ([`crate::deflate`]) for
//! `--permessage-deflate`: it offers permessage-deflate as Chromium does, compresses every
//! message when the server agrees, and counts the bytes on the wire either way.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;

use super::LoadError;
use super::args::Transport;
use super::run::{Ctx, HANDSHAKE_TIMEOUT, wait_run, wait_stop};
use super::track::{Frame, Stats, Tracker, Window, parse_frame, send_body, short};
use crate::deflate::{CHROMIUM_OFFER, Codec, Frame as WsFrame, check_answer, header, parse_head};

/// Bytes read at a time.
const READ_CHUNK: usize = 16 * 1024;

/// One connection: the socket, the codec, and the bytes it moved after the handshake.
struct Conn {
    stream: TcpStream,
    codec: Codec,
    read: Box<[u8]>,
    bytes_in: u64,
    bytes_out: u64,
}

impl Conn {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        self.bytes_out += bytes.len() as u64;
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| LoadError::io("write", &e))
    }

    /// Sends text messages in one write, compressed when agreed.
    async fn send(&mut self, texts: &[String]) -> Result<(), LoadError> {
        let mut out = Vec::new();
        for text in texts {
            self.codec.encode_text(text, true, &mut out);
        }
        self.write(&out).await
    }

    /// The next text message; pings are answered. `None` once the connection closed.
    async fn next_text(&mut self) -> Result<Option<String>, LoadError> {
        loop {
            match self.codec.next_frame() {
                Ok(Some(WsFrame::Text(text, _))) => return Ok(Some(text)),
                Ok(Some(WsFrame::Ping(payload))) => {
                    let mut out = Vec::new();
                    self.codec.encode_pong(&payload, &mut out);
                    self.write(&out).await?;
                    continue;
                }
                Ok(Some(WsFrame::Pong(_))) => continue,
                Ok(Some(WsFrame::Binary(b))) => {
                    return Err(LoadError::new(
                        "protocol",
                        format!("binary frame of {} bytes", b.len()),
                    ));
                }
                Ok(Some(WsFrame::Close(close))) => {
                    return Err(LoadError::new("closed", format!("close frame {close:?}")));
                }
                Ok(None) => {}
                Err(e) => return Err(LoadError::new("ws", e)),
            }
            let n = self
                .stream
                .read(&mut self.read)
                .await
                .map_err(|e| LoadError::io("read", &e))?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes_in += n as u64;
            self.codec.feed(&self.read[..n]);
        }
    }
}

/// Opens the connection: TCP, the upgrade with the offer, and (SockJS) the `o` frame.
async fn open(ctx: &Ctx) -> Result<Conn, LoadError> {
    let cfg = &ctx.cfg;
    let path = match cfg.transport {
        Transport::RawWebSocket => format!("{}/websocket", cfg.prefix),
        _ => format!(
            "{}/000/{}/websocket",
            cfg.prefix,
            crate::util::random_session_id()
        ),
    };
    let mut stream = super::connect_tcp(cfg.addr, HANDSHAKE_TIMEOUT).await?;
    let request = crate::deflate::upgrade_request(&cfg.host, &path, Some(CHROMIUM_OFFER));
    let handshake = async {
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| LoadError::io("write the upgrade", &e))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(head) = parse_head(&buf).map_err(|e| LoadError::new("handshake", e))? {
                return Ok((head, buf));
            }
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| LoadError::io("read the upgrade response", &e))?;
            if n == 0 {
                return Err(LoadError::new("handshake", "closed during the handshake"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let ((status, headers, used), buf) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| LoadError::new("timeout", "WebSocket handshake timed out"))??;
    if status != 101 {
        return Err(LoadError::new(
            "handshake",
            format!("upgrade answered {status}"),
        ));
    }
    let agreed = match header(&headers, "sec-websocket-extensions") {
        Some(answer) => Some(
            check_answer(&answer, CHROMIUM_OFFER)
                .map_err(|e| LoadError::new("handshake", format!("bad answer: {e}")))?,
        ),
        None => None,
    };
    let mut conn = Conn {
        stream,
        codec: Codec::new(agreed),
        read: vec![0; READ_CHUNK].into_boxed_slice(),
        bytes_in: 0,
        bytes_out: 0,
    };
    conn.codec.feed(&buf[used..]);
    conn.bytes_in = (buf.len() - used) as u64;
    if cfg.transport == Transport::WebSocket {
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next_text())
            .await
            .map_err(|_| LoadError::new("timeout", "no open frame"))??;
        match first.as_deref() {
            Some("o") => {}
            Some(other) => {
                return Err(LoadError::new(
                    "protocol",
                    format!("expected the open frame, got {}", short(other)),
                ));
            }
            None => return Err(LoadError::new("closed", "closed before the open frame")),
        }
    }
    Ok(conn)
}

/// One session: opens, reports to the controller, then echoes (or idles) until stopped.
pub(super) async fn session(ctx: Arc<Ctx>, _idx: usize, ready: UnboundedSender<bool>) -> Stats {
    let mut t = Tracker::new(ctx.cfg.size, ctx.cfg.window).json(ctx.cfg.json);
    let opened = {
        let _permit = ctx.permits.acquire().await;
        let mut opened = open(&ctx).await;
        if let (true, Ok(conn)) = (ctx.cfg.echo_first, &mut opened) {
            // One echo first, so the figure includes what a session keeps after a message.
            if let Err(e) = warm(conn, &ctx, &mut t).await {
                opened = Err(e);
            }
        }
        opened
    };
    let mut conn = match opened {
        Ok(conn) => conn,
        Err(e) => {
            t.stats.error(e.kind, e.msg);
            let _ = ready.send(false);
            return t.stats;
        }
    };
    t.stats.opened = 1;
    t.stats.deflated = u64::from(conn.codec.agreed().is_some());
    let _ = ready.send(true);
    let mut phase = ctx.phase.clone();
    let Some(window) = wait_run(&mut phase).await else {
        return t.stats;
    };
    // Count the wire from here: the handshake and any warm-up echo are not traffic.
    conn.bytes_in = 0;
    conn.bytes_out = 0;
    if ctx.cfg.idle {
        hold(&mut conn, &ctx, &mut t.stats).await;
    } else {
        drive(&mut conn, &ctx, &mut t, window).await;
    }
    t.stats.wire_in = conn.bytes_in;
    t.stats.wire_out = conn.bytes_out;
    t.stats
}

/// Sends one message and waits for its echo.
async fn warm(conn: &mut Conn, ctx: &Ctx, t: &mut Tracker) -> Result<(), LoadError> {
    let Some(m) = t.next_message(Instant::now()) else {
        return Ok(());
    };
    let sockjs = ctx.cfg.transport == Transport::WebSocket;
    let body = if sockjs { send_body(&[&m]) } else { m };
    conn.send(&[body]).await?;
    loop {
        let text = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.next_text())
            .await
            .map_err(|_| LoadError::new("timeout", "no echo of the first message"))??
            .ok_or_else(|| LoadError::new("closed", "closed before the first echo"))?;
        if !sockjs || text.starts_with("a[") {
            // Not counted: outside any window.
            t.on_echo(&first_message(&text, sockjs), Instant::now(), None);
            return Ok(());
        }
    }
}

/// The first message of an echo frame (or the raw text).
pub(super) fn first_message(text: &str, sockjs: bool) -> String {
    if !sockjs {
        return text.to_owned();
    }
    match parse_frame(text) {
        Ok(Frame::Messages(ms)) => ms.into_iter().next().unwrap_or_default(),
        _ => String::new(),
    }
}

/// Idle: keeps the connection open (answering pings, counting heartbeats) until stopped.
async fn hold(conn: &mut Conn, ctx: &Ctx, stats: &mut Stats) {
    let stop = wait_stop(ctx.phase.clone());
    tokio::pin!(stop);
    loop {
        let m = tokio::select! {
            biased;
            _ = &mut stop => return,
            m = conn.next_text() => m,
        };
        match m {
            Ok(Some(t)) if t == "h" => stats.heartbeats += 1,
            Ok(Some(t)) => stats.error("protocol", format!("idle session got {}", short(&t))),
            Ok(None) => return stats.error("closed", "connection closed by the server"),
            Err(e) => return stats.error(e.kind, e.msg),
        }
    }
}

/// Echo traffic: keeps the window full, verifies every echo, until stopped.
async fn drive(conn: &mut Conn, ctx: &Ctx, t: &mut Tracker, window: Window) {
    let sockjs = ctx.cfg.transport == Transport::WebSocket;
    let stop = wait_stop(ctx.phase.clone());
    tokio::pin!(stop);
    loop {
        let now = Instant::now();
        let mut batch = Vec::new();
        while let Some(m) = t.next_message(now) {
            batch.push(if sockjs { send_body(&[m]) } else { m });
        }
        if !batch.is_empty() {
            let r = tokio::select! {
                biased;
                _ = &mut stop => return,
                r = conn.send(&batch) => r,
            };
            if let Err(e) = r {
                return t.stats.error(e.kind, format!("send: {}", e.msg));
            }
        }
        let m = tokio::select! {
            biased;
            _ = &mut stop => return,
            m = conn.next_text() => m,
        };
        let now = Instant::now();
        let text = match m {
            Ok(Some(text)) => text,
            Ok(None) => return t.stats.error("closed", "connection closed by the server"),
            Err(e) => return t.stats.error(e.kind, e.msg),
        };
        if !sockjs {
            t.stats.wire_echoes += 1;
            t.on_echo(&text, now, Some(&window));
            continue;
        }
        match parse_frame(&text) {
            Ok(Frame::Messages(ms)) => {
                for m in &ms {
                    t.stats.wire_echoes += 1;
                    t.on_echo(m, now, Some(&window));
                }
            }
            Ok(Frame::Heartbeat) => t.stats.heartbeats += 1,
            Ok(Frame::Open) => t.stats.error("protocol", "a second open frame"),
            Ok(Frame::Close(c)) => {
                return t.stats.error(
                    "closed",
                    format!("server closed the session: {}", short(&c)),
                );
            }
            Err(e) => t.stats.error("protocol", e),
        }
    }
}
