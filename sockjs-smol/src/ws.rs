//! WebSocket after the engine accepted an upgrade: RFC 6455 through tungstenite, and
//! hixie-76 through the core's framing.

use std::time::{Duration, Instant};

use async_io::Timer;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use bytes::BytesMut;
use futures_lite::{StreamExt, future};
use sockjs_core::RequestId;
use sockjs_core::handshake::hixie76_answer;
use sockjs_core::wire::hixie76;

use crate::conn::{ConnRx, Io};
use crate::shard::{ConnMsg, Shard};

/// How long to wait for the peer's side of the closing handshake after sending a close
/// frame, before dropping the TCP connection.
const CLOSE_LINGER: Duration = Duration::from_millis(500);

/// Bytes tungstenite reads at a time (its default, 128 KiB, is allocated per connection
/// and zero-filled before every read).
const WS_READ_BUFFER: usize = 4096;

/// An upgraded connection and the engine request it belongs to.
pub(crate) struct Socket<'a> {
    pub(crate) io: &'a Io,
    pub(crate) shard: &'a std::sync::Arc<Shard>,
    pub(crate) id: RequestId,
    pub(crate) rx: ConnRx,
    pub(crate) max_message_size: usize,
    pub(crate) header_read_timeout: Duration,
}

impl Socket<'_> {
    fn message(&self, text: &str) {
        let id = self.id;
        self.shard
            .with_engine(|st, now| st.engine.handle_ws_message(now, id, text));
    }

    fn closed(&self) {
        let id = self.id;
        self.shard
            .with_engine(|st, now| st.engine.handle_ws_closed(now, id));
    }

    fn too_big(&self) {
        let id = self.id;
        self.shard
            .with_engine(|st, now| st.engine.handle_ws_too_big(now, id));
    }

    /// RFC 6455: the 101 head is written; `buffered` holds bytes the client sent after its
    /// request.
    pub(crate) async fn rfc6455(self, buffered: BytesMut) {
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size));
        let ws = WebSocketStream::from_partially_read(
            &self.io.stream,
            buffered.to_vec(),
            Role::Server,
            Some(config),
        )
        .await;
        let (mut sender, mut receiver) = ws.split();
        let write_timeout = self.io.write_timeout;

        enum ReadEnd {
            /// The client closed or went away; the engine knows.
            Closed,
            /// The client sent a message over the limit; the engine queued a close.
            TooBig,
        }
        let reader = async {
            loop {
                match receiver.next().await {
                    Some(Ok(Message::Text(text))) => self.message(text.as_str()),
                    // A close frame: tungstenite queues the reply, sent by the next read.
                    Some(Ok(Message::Close(_))) => self.closed(),
                    Some(Ok(_)) => {}
                    Some(Err(WsError::Capacity(_))) => {
                        self.too_big();
                        return ReadEnd::TooBig;
                    }
                    Some(Err(_)) | None => {
                        self.closed();
                        return ReadEnd::Closed;
                    }
                }
            }
        };
        let writer = async {
            while let Some(msg) = self.rx.recv().await {
                let message = match msg {
                    ConnMsg::WsText(text) => Message::text(text),
                    ConnMsg::WsPing => Message::Ping(Default::default()),
                    ConnMsg::WsClose(code, reason) => {
                        let frame = CloseFrame {
                            code: CloseCode::from(code),
                            reason: reason.into(),
                        };
                        let _ = timeout(write_timeout, sender.close(Some(frame))).await;
                        return;
                    }
                    _ => continue,
                };
                if !matches!(
                    timeout(write_timeout, sender.send(message)).await,
                    Some(Ok(()))
                ) {
                    return;
                }
            }
        };
        futures_lite::pin!(reader);
        futures_lite::pin!(writer);
        let first = future::or(async { Some(reader.as_mut().await) }, async {
            writer.as_mut().await;
            None
        })
        .await;
        match first {
            Some(ReadEnd::Closed) => {}
            // Let the writer send the 1009 close the engine queued.
            Some(ReadEnd::TooBig) => {
                let _ = timeout(write_timeout, writer.as_mut()).await;
            }
            // We sent a close frame (or the queue ended): give the client a moment to
            // answer it, so its close frame is read before the TCP connection goes away.
            None => {
                let _ = timeout(CLOSE_LINGER, reader.as_mut()).await;
            }
        }
    }

    /// Hixie-76: the 101 head is written; read key3 (maybe already in `buf`), answer it,
    /// then exchange `0x00 text 0xFF` frames.
    pub(crate) async fn hixie76(self, mut buf: BytesMut, key1: u32, key2: u32) {
        let deadline = Instant::now() + self.header_read_timeout;
        while buf.len() < 8 {
            match self.io.read_until(&mut buf, deadline).await {
                Ok(Some(n)) if n > 0 => {}
                _ => return self.closed(),
            }
        }
        let mut key3 = [0u8; 8];
        key3.copy_from_slice(&buf.split_to(8));
        if self
            .io
            .write_all(&hixie76_answer(key1, key2, key3))
            .await
            .is_err()
        {
            return self.closed();
        }
        let mut decoder = hixie76::Decoder::new(self.max_message_size);
        let mut out = BytesMut::new();
        enum Event {
            Msg(Option<ConnMsg>),
            Read(std::io::Result<usize>),
        }
        loop {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(hixie76::Frame::Text(text))) => self.message(&text),
                    Ok(Some(hixie76::Frame::Close)) => {
                        let _ = self.io.write_all(hixie76::CLOSE_FRAME).await;
                        return self.closed();
                    }
                    Ok(None) => break,
                    Err(hixie76::Error::MessageTooLarge) => {
                        self.too_big();
                        // The engine queued its close synchronously; write what is queued.
                        while let Some(msg) = self.rx.try_recv() {
                            if self.write_hixie(msg, &mut out).await.is_err() {
                                break;
                            }
                        }
                        return;
                    }
                    Err(_) => return self.closed(),
                }
            }
            let msg = async { Event::Msg(self.rx.recv().await) };
            let read = async { Event::Read(self.io.read_into(&mut buf).await) };
            match future::or(msg, read).await {
                Event::Msg(Some(msg)) => match self.write_hixie(msg, &mut out).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return,
                },
                Event::Msg(None) => return,
                Event::Read(Ok(0)) | Event::Read(Err(_)) => return self.closed(),
                Event::Read(Ok(_)) => {}
            }
        }
    }

    /// Writes one outgoing message as hixie-76; `Ok(false)` once the socket is closed.
    async fn write_hixie(&self, msg: ConnMsg, out: &mut BytesMut) -> std::io::Result<bool> {
        out.clear();
        match msg {
            ConnMsg::WsText(text) => hixie76::encode_text(&text, out),
            ConnMsg::WsClose(..) => {
                hixie76::encode_close(out);
                self.io.write_all(out).await?;
                return Ok(false);
            }
            // Hixie-76 has no ping.
            _ => return Ok(true),
        }
        self.io.write_all(out).await?;
        Ok(true)
    }
}

async fn timeout<F: std::future::Future>(limit: Duration, fut: F) -> Option<F::Output> {
    future::or(async { Some(fut.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}
