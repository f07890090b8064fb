//! A plain WebSocket echo server on async-io and async-executor (smol's runtime), with
//! tungstenite's own WebSocket over a non-blocking socket and no SockJS: the floor of
//! what sockjs-smol can reach on its runtime, as `raw_echo` is on tokio's.
//!
//! Usage: `raw_echo_smol [ADDR]` (default `127.0.0.1:0`; loopback only). Prints
//! `listening on http://ADDR` once bound, then echoes every text or binary message on any
//! path until killed. Executor threads: the CPUs the process may run on.
//!
//! Like `raw_echo`, each connection's read buffer is 4 KiB, and a socket is read until it
//! would block before the task waits for it again (async-io arms a socket once per wait).
#![forbid(unsafe_code)]

#[path = "loopback.rs"]
mod loopback;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;

use async_executor::Executor;
use async_io::Async;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message, WebSocket};

/// Read buffer per connection (bytes).
const READ_BUFFER: usize = 4096;

/// The non-blocking socket as tungstenite's `Read + Write` stream.
struct Stream(Arc<Async<TcpStream>>);

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.get_ref().read(buf)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.get_ref().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block(e: &Error) -> bool {
    matches!(e, Error::Io(e) if e.kind() == io::ErrorKind::WouldBlock)
}

async fn echo(socket: Async<TcpStream>) {
    let _ = socket.get_ref().set_nodelay(true);
    let socket = Arc::new(socket);
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let mut handshake = tungstenite::accept_with_config(Stream(socket.clone()), Some(config));
    let mut ws: WebSocket<Stream> = loop {
        match handshake {
            Ok(ws) => break ws,
            Err(HandshakeError::Interrupted(mid)) => {
                if socket.readable().await.is_err() {
                    return;
                }
                handshake = mid.handshake();
            }
            Err(HandshakeError::Failure(_)) => return,
        }
    };
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => match ws.send(m) {
                Ok(()) => {}
                Err(e) if would_block(&e) => {
                    // The reply is queued in tungstenite: write it out before reading on.
                    loop {
                        if socket.writable().await.is_err() {
                            return;
                        }
                        match ws.flush() {
                            Ok(()) => break,
                            Err(e) if would_block(&e) => {}
                            Err(_) => return,
                        }
                    }
                }
                Err(_) => return,
            },
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return;
            }
            Ok(_) => {}
            Err(e) if would_block(&e) => {
                if socket.readable().await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn main() -> ExitCode {
    let addr = match loopback::addr_from_args("raw_echo_smol") {
        Ok(addr) => addr,
        Err(code) => return code,
    };
    let listener = match Async::<TcpListener>::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("raw_echo_smol: bind {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.get_ref().local_addr() {
        Ok(a) => println!("listening on http://{a}"),
        Err(e) => {
            eprintln!("raw_echo_smol: {e}");
            return ExitCode::FAILURE;
        }
    }
    let executor = Arc::new(Executor::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for _ in 1..threads {
        let executor = executor.clone();
        std::thread::spawn(move || async_io::block_on(executor.run(std::future::pending::<()>())));
    }
    let spawner = executor.clone();
    // The accept loop is a task of its own, as in sockjs-smol: as the main future of `run`
    // it would be polled on every wake-up of this thread, and each poll of async-io's
    // `accept` tries the system call again.
    let accepting = executor.spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => spawner.spawn(echo(stream)).detach(),
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    eprintln!("raw_echo_smol: accept: {e}");
                    async_io::Timer::after(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    async_io::block_on(executor.run(accepting))
}
