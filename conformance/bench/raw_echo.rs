//! A plain WebSocket echo server on tokio-tungstenite, with no SockJS: the benchmarks'
//! lower bound on framing overhead.
//!
//! Usage: `raw_echo [ADDR]` (default `127.0.0.1:0`; loopback only). Prints
//! `listening on http://ADDR` once bound, then echoes every text or binary message on any
//! path until killed. Worker threads: the CPUs the process may run on (one CPU: a
//! current-thread runtime, as sockjs-tokio's test server).
//!
//! Each connection's read buffer is 4 KiB instead of tungstenite's eagerly allocated
//! 128 KiB default, so that the idle-memory figure is a floor too.
#![forbid(unsafe_code)]

#[path = "loopback.rs"]
mod loopback;
#[path = "tokio_floor.rs"]
mod tokio_floor;

use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Read buffer per connection (bytes).
const READ_BUFFER: usize = 4096;

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    while let Some(Ok(m)) = ws.next().await {
        match m {
            Message::Text(_) | Message::Binary(_) => {
                if ws.feed(m).await.is_err() {
                    return;
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
            Message::Close(_) => return,
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    tokio_floor::run("raw_echo", echo)
}
