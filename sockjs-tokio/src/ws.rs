//! WebSocket connections after the 101: RFC 6455 through tokio-tungstenite, hixie-76 with
//! the core's framing. One task per socket; it owns the upgraded I/O, feeds received
//! messages to the engine and writes what the engine queued for it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use sockjs_core::Handshake;
use sockjs_core::handshake::hixie76_answer;
use sockjs_core::wire::hixie76;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::shard::{AbortGuard, OutboxRx, Shard, WsOut};

/// How long a closing socket waits for the peer's close reply, and a hixie-76 handshake for
/// its 8-byte key.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
const KEY3_TIMEOUT: Duration = Duration::from_secs(10);
/// tungstenite's read buffer per socket, and the most it reads per call. Its default
/// (128 KiB) is allocated up front and zeroed before every read, which dominated both idle
/// memory and CPU per message; larger frames still arrive whole (the buffer grows to the
/// frame's length).
const READ_BUFFER: usize = 2048;
/// Bytes tungstenite buffers before writing while frames are fed ahead of a flush; also
/// bounds what its write buffer keeps allocated after a burst.
const WRITE_BUFFER: usize = 16 * 1024;

/// Runs one upgraded WebSocket to its end. Dropping `guard` at the end tells the engine the
/// socket is gone (a no-op when the engine closed it).
pub(crate) async fn run(
    on_upgrade: OnUpgrade,
    handshake: Handshake,
    rx: OutboxRx<WsOut>,
    guard: AbortGuard,
    max_message: usize,
) {
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(%error, "websocket upgrade failed");
            return;
        }
    };
    match handshake {
        // `serve` and axum give hyper a `TokioIo<TcpStream>`: take the socket back out of
        // the upgrade wrapper (a boxed stream behind a rewind buffer, adapted twice), so
        // each read and write goes straight to it.
        Handshake::Rfc6455 => match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let io = parts.io.into_inner();
                rfc6455(io, parts.read_buf, rx, &guard, max_message).await;
            }
            Err(upgraded) => {
                let io = TokioIo::new(upgraded);
                rfc6455(io, Bytes::new(), rx, &guard, max_message).await;
            }
        },
        Handshake::Hixie76 { key1, key2 } => {
            let io = TokioIo::new(upgraded);
            hixie76(io, key1, key2, rx, &guard, max_message).await;
        }
    }
    drop(guard);
}

fn message(shard: &Arc<Shard>, guard: &AbortGuard, text: &str) {
    let id = guard.id();
    shard.run(|state, now| state.engine.handle_ws_message(now, id, text));
}

fn too_big(shard: &Arc<Shard>, guard: &AbortGuard) {
    let id = guard.id();
    shard.run(|state, now| state.engine.handle_ws_too_big(now, id));
}

fn closed(shard: &Arc<Shard>, guard: &AbortGuard) {
    let id = guard.id();
    shard.run(|state, now| {
        state.requests.remove(&id);
        state.engine.handle_ws_closed(now, id);
    });
}

/// `read` holds bytes the HTTP layer read past the upgrade request (the first frames).
async fn rfc6455<S>(
    io: S,
    read: Bytes,
    mut rx: OutboxRx<WsOut>,
    guard: &AbortGuard,
    max_message: usize,
) where
    S: ReadReady + AsyncRead + AsyncWrite + Unpin,
{
    let shard = guard.shard().clone();
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    // `read` is a slice of the HTTP layer's whole read buffer: copy what it holds and let
    // the buffer go.
    let part = (!read.is_empty()).then(|| read.to_vec());
    drop(read);
    let mut ws = match part {
        None => WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await,
        Some(part) => {
            WebSocketStream::from_partially_read(io, part, Role::Server, Some(config)).await
        }
    };
    let killed = rx.rx.killed();
    let mut drained = false;
    // Off once a message was too big: the stream is unusable after that error, and
    // reading it again would end the loop before the engine's 1009 close is sent.
    let mut reading = true;
    loop {
        tokio::select! {
            out = rx.rx.recv() => {
                let Some(out) = out else {
                    // The engine dropped the socket (queue overflow or abort).
                    let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(None)).await;
                    return;
                };
                // Write everything already queued, then flush once.
                let mut last = false;
                let sent = tokio::select! {
                    result = feed_queued(&mut ws, &mut rx, out, &mut last) => result.is_ok(),
                    () = killed.wait() => false,
                };
                if !sent {
                    return;
                }
                if last {
                    // Let the peer answer the close, briefly. tungstenite stops at the first
                    // error (e.g. the rest of an oversized message), so then half-close and
                    // drain the raw socket: closing it with unread bytes would send a reset,
                    // and a reset makes the client drop the frames just sent (the 1009).
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while let Some(Ok(_)) = ws.next().await {}
                        let io = ws.get_mut();
                        let _ = io.shutdown().await;
                        let mut sink = [0u8; 4096];
                        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
                    })
                    .await;
                    return;
                }
            }
            incoming = next_message(&mut ws, &mut drained), if reading => match incoming {
                Some(Ok(Message::Text(text))) => message(&shard, guard, text.as_str()),
                Some(Ok(Message::Binary(data))) => match std::str::from_utf8(&data) {
                    Ok(text) => message(&shard, guard, text),
                    Err(_) => tracing::debug!("ignoring a non-UTF-8 binary message"),
                },
                Some(Ok(Message::Close(_))) | None => {
                    closed(&shard, guard);
                    // Flush tungstenite's close reply.
                    let _ = tokio::time::timeout(CLOSE_GRACE, ws.close(None)).await;
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(WsError::Capacity(_))) => {
                    reading = false;
                    too_big(&shard, guard);
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, "websocket read failed");
                    return;
                }
            },
            () = killed.wait() => return,
        }
    }
}

/// Whether the socket has something to read, asked without going through tungstenite,
/// whose every read attempt first zeroes its read buffer.
pub(crate) trait ReadReady {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<()>;
}

impl ReadReady for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        // An error is left for the read itself to report.
        TcpStream::poll_read_ready(self, cx).map(|_| ())
    }
}

impl<T> ReadReady for TokioIo<T> {
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
}

/// The next message. The socket task is woken for its outgoing queue as often as for
/// its socket; once tungstenite has run out of buffered frames (`drained`), it is polled
/// again only when the socket is readable.
async fn next_message<S>(
    ws: &mut WebSocketStream<S>,
    drained: &mut bool,
) -> Option<Result<Message, WsError>>
where
    S: ReadReady + AsyncRead + AsyncWrite + Unpin,
{
    std::future::poll_fn(|cx| {
        if *drained && ws.get_ref().poll_read_ready(cx).is_pending() {
            return Poll::Pending;
        }
        let next = ws.poll_next_unpin(cx);
        *drained = next.is_pending();
        next
    })
    .await
}

/// Most frames written between two flushes.
const WRITE_BATCH: usize = 64;

/// Feeds `first` and whatever else is already queued (up to [`WRITE_BATCH`] frames, or
/// through a close frame, which sets `last`) to the socket, then flushes once.
async fn feed_queued<S>(
    ws: &mut WebSocketStream<S>,
    rx: &mut OutboxRx<WsOut>,
    first: WsOut,
    last: &mut bool,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut next = Some(first);
    let mut fed = 0;
    while let Some(out) = next.take() {
        let message = match out {
            WsOut::Text(text) => {
                rx.took(text.len());
                Message::text(text)
            }
            WsOut::Ping => Message::Ping(Default::default()),
            WsOut::Close(code, reason) => {
                rx.took(reason.len());
                *last = true;
                let frame = CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                };
                Message::Close(Some(frame))
            }
        };
        ws.feed(message).await?;
        fed += 1;
        if !*last && fed < WRITE_BATCH {
            next = rx.rx.try_recv();
        }
    }
    ws.flush().await
}

async fn hixie76<S>(
    io: S,
    key1: u32,
    key2: u32,
    mut rx: OutboxRx<WsOut>,
    guard: &AbortGuard,
    max_message: usize,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let shard = guard.shard().clone();
    let killed = rx.rx.killed();
    let (mut reader, mut writer) = tokio::io::split(io);
    let mut key3 = [0u8; 8];
    match tokio::time::timeout(KEY3_TIMEOUT, reader.read_exact(&mut key3)).await {
        Ok(Ok(_)) => {}
        _ => {
            tracing::debug!("hixie-76 key3 not received");
            return;
        }
    }
    let mut out = BytesMut::with_capacity(256);
    out.extend_from_slice(&hixie76_answer(key1, key2, key3));
    if writer.write_all(&out).await.is_err() {
        return;
    }
    let mut decoder = hixie76::Decoder::new(max_message);
    let mut input = BytesMut::with_capacity(4096);
    let mut broken = false;
    loop {
        tokio::select! {
            item = rx.rx.recv() => {
                out.clear();
                let last = match item {
                    Some(WsOut::Text(text)) => {
                        rx.took(text.len());
                        hixie76::encode_text(&text, &mut out);
                        false
                    }
                    // Hixie-76 has no ping; SockJS sessions send `h` frames instead.
                    Some(WsOut::Ping) => continue,
                    Some(WsOut::Close(_, reason)) => {
                        rx.took(reason.len());
                        hixie76::encode_close(&mut out);
                        true
                    }
                    None => return,
                };
                let sent = tokio::select! {
                    result = writer.write_all(&out) => result.is_ok(),
                    () = killed.wait() => false,
                };
                if !sent || last {
                    let _ = tokio::time::timeout(CLOSE_GRACE, writer.shutdown()).await;
                    return;
                }
            }
            read = reader.read_buf(&mut input), if !broken => {
                match read {
                    Ok(0) | Err(_) => {
                        closed(&shard, guard);
                        return;
                    }
                    Ok(_) => {}
                }
                loop {
                    match decoder.decode(&mut input) {
                        Ok(Some(hixie76::Frame::Text(text))) => message(&shard, guard, &text),
                        Ok(Some(hixie76::Frame::Close)) => {
                            closed(&shard, guard);
                            out.clear();
                            hixie76::encode_close(&mut out);
                            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                                let _ = writer.write_all(&out).await;
                                let _ = writer.shutdown().await;
                            })
                            .await;
                            return;
                        }
                        Ok(None) => break,
                        Err(hixie76::Error::MessageTooLarge) => {
                            // The engine answers with a close; stop reading.
                            broken = true;
                            too_big(&shard, guard);
                            break;
                        }
                        Err(error) => {
                            tracing::debug!(%error, "hixie-76 framing error");
                            return;
                        }
                    }
                }
            }
            () = killed.wait() => return,
        }
    }
}
