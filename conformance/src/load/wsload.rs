//! WebSocket sessions: SockJS over WebSocket, or a plain WebSocket echo.

use std::sync::Arc;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::LoadError;
use super::args::Transport;
use super::run::{Ctx, HANDSHAKE_TIMEOUT, wait_run, wait_stop};
use super::track::{Frame, Stats, Tracker, Window, parse_frame, send_body, short};
use super::wsdeflate::first_message;

type Ws = WebSocketStream<TcpStream>;

/// Read buffer per connection (tungstenite allocates it eagerly; its default is 128 KiB).
const READ_BUFFER: usize = 8 * 1024;

/// Opens the connection: TCP, upgrade and (SockJS) the `o` frame.
async fn open(ctx: &Ctx) -> Result<Ws, LoadError> {
    let cfg = &ctx.cfg;
    let path = match cfg.transport {
        Transport::RawWebSocket => format!("{}/websocket", cfg.prefix),
        _ => format!(
            "{}/000/{}/websocket",
            cfg.prefix,
            crate::util::random_session_id()
        ),
    };
    let stream = super::connect_tcp(cfg.addr, HANDSHAKE_TIMEOUT).await?;
    let uri = format!("ws://{}{path}", cfg.host);
    let (mut ws, _) = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_tungstenite::client_async_with_config(
            uri,
            stream,
            // Small eager read buffers: 10k idle sessions must not cost 1.3 GB here.
            Some(WebSocketConfig::default().read_buffer_size(READ_BUFFER)),
        ),
    )
    .await
    .map_err(|_| LoadError::new("timeout", "WebSocket handshake timed out"))?
    .map_err(|e| LoadError::new("handshake", format!("WebSocket handshake: {e}")))?;
    if cfg.transport == Transport::WebSocket {
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, ws.next())
            .await
            .map_err(|_| LoadError::new("timeout", "no open frame"))?;
        match first {
            Some(Ok(Message::Text(t))) if t.as_str() == "o" => {}
            Some(Ok(m)) => {
                return Err(LoadError::new(
                    "protocol",
                    format!("expected the open frame, got {}", describe(&m)),
                ));
            }
            Some(Err(e)) => return Err(LoadError::new("ws", format!("before open: {e}"))),
            None => return Err(LoadError::new("closed", "closed before the open frame")),
        }
    }
    Ok(ws)
}

fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) => format!("text {}", short(t.as_str())),
        Message::Binary(b) => format!("binary frame of {} bytes", b.len()),
        Message::Close(c) => format!("close frame {c:?}"),
        other => format!("{other:?}"),
    }
}

/// One session: opens, reports to the controller, then echoes (or idles) until stopped.
pub(super) async fn session(ctx: Arc<Ctx>, _idx: usize, ready: UnboundedSender<bool>) -> Stats {
    let mut t = Tracker::new(ctx.cfg.size, ctx.cfg.window).json(ctx.cfg.json);
    let opened = {
        let _permit = ctx.permits.acquire().await;
        let mut opened = open(&ctx).await;
        if let (true, Ok(ws)) = (ctx.cfg.echo_first, &mut opened) {
            if let Err(e) = warm(ws, &ctx, &mut t).await {
                opened = Err(e);
            }
        }
        opened
    };
    let ws = match opened {
        Ok(ws) => ws,
        Err(e) => {
            t.stats.error(e.kind, e.msg);
            let _ = ready.send(false);
            return t.stats;
        }
    };
    t.stats.opened = 1;
    let _ = ready.send(true);
    let mut phase = ctx.phase.clone();
    let Some(window) = wait_run(&mut phase).await else {
        return t.stats;
    };
    if ctx.cfg.idle {
        hold(ws, &ctx, &mut t.stats).await;
    } else {
        drive(ws, &ctx, &mut t, window).await;
    }
    t.stats
}

/// Sends one message and waits for its echo (not counted: it is outside any window).
async fn warm(ws: &mut Ws, ctx: &Ctx, t: &mut Tracker) -> Result<(), LoadError> {
    let Some(m) = t.next_message(Instant::now()) else {
        return Ok(());
    };
    let sockjs = ctx.cfg.transport == Transport::WebSocket;
    let body = if sockjs { send_body(&[&m]) } else { m };
    ws.send(Message::text(body))
        .await
        .map_err(|e| LoadError::new("ws", format!("send: {e}")))?;
    loop {
        let m = tokio::time::timeout(HANDSHAKE_TIMEOUT, ws.next())
            .await
            .map_err(|_| LoadError::new("timeout", "no echo of the first message"))?;
        match m {
            Some(Ok(Message::Text(text))) if !sockjs || text.as_str().starts_with("a[") => {
                t.on_echo(&first_message(text.as_str(), sockjs), Instant::now(), None);
                return Ok(());
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(LoadError::new("ws", format!("before the echo: {e}"))),
            None => return Err(LoadError::new("closed", "closed before the first echo")),
        }
    }
}

/// Idle: keeps the connection open (answering pings, counting heartbeats) until stopped.
async fn hold(mut ws: Ws, ctx: &Ctx, stats: &mut Stats) {
    let stop = wait_stop(ctx.phase.clone());
    tokio::pin!(stop);
    loop {
        let m = tokio::select! {
            biased;
            _ = &mut stop => return,
            m = ws.next() => m,
        };
        match m {
            Some(Ok(Message::Text(t))) if t.as_str() == "h" => stats.heartbeats += 1,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(m)) => stats.error("protocol", format!("idle session got {}", describe(&m))),
            Some(Err(e)) => return stats.error("ws", e.to_string()),
            None => return stats.error("closed", "connection closed by the server"),
        }
    }
}

/// Echo traffic: keeps the window full, verifies every echo, until stopped.
async fn drive(mut ws: Ws, ctx: &Ctx, t: &mut Tracker, window: Window) {
    let sockjs = ctx.cfg.transport == Transport::WebSocket;
    let stop = wait_stop(ctx.phase.clone());
    tokio::pin!(stop);
    loop {
        // Fill the window.
        let now = Instant::now();
        let mut batch = Vec::new();
        while let Some(m) = t.next_message(now) {
            batch.push(if sockjs { send_body(&[m]) } else { m });
        }
        if !batch.is_empty() {
            let send = async {
                for m in batch {
                    ws.feed(Message::text(m)).await?;
                }
                ws.flush().await
            };
            let r = tokio::select! {
                biased;
                _ = &mut stop => return,
                r = send => r,
            };
            if let Err(e) = r {
                return t.stats.error("ws", format!("send: {e}"));
            }
        }
        let m = tokio::select! {
            biased;
            _ = &mut stop => return,
            m = ws.next() => m,
        };
        let now = Instant::now();
        let text = match m {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(m)) => {
                t.stats.error("protocol", format!("got {}", describe(&m)));
                if matches!(m, Message::Close(_)) {
                    return;
                }
                continue;
            }
            Some(Err(e)) => return t.stats.error("ws", e.to_string()),
            None => return t.stats.error("closed", "connection closed by the server"),
        };
        if !sockjs {
            t.on_echo(text.as_str(), now, Some(&window));
            continue;
        }
        match parse_frame(text.as_str()) {
            Ok(Frame::Messages(ms)) => {
                for m in &ms {
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
