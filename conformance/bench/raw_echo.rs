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

use std::process::ExitCode;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
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
    let addr = match loopback::addr_from_args("raw_echo") {
        Ok(addr) => addr,
        Err(code) => return code,
    };
    // As sockjs-tokio's test server: a current-thread runtime on one CPU, so that the
    // floor and the server it is the floor of schedule alike.
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let built = if one_core {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raw_echo: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("raw_echo: bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(a) => println!("listening on http://{a}"),
            Err(e) => {
                eprintln!("raw_echo: {e}");
                return ExitCode::FAILURE;
            }
        }
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(echo(stream));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    eprintln!("raw_echo: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    })
}
