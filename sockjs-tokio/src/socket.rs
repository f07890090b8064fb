//! Connections: the TCP socket the server shares between its HTTP connection, the
//! WebSocket pump and the liveness probe; and any stream hyper upgrades (under axum or a
//! hyper server of the application's).

use std::io;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sockjs_core::driver::{ConnectionProbe, Polled, Socket};
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt as _};

/// A TCP socket shared by reference: reads and writes go straight to the descriptor
/// (`try_read`/`try_write`) and only readiness is awaited.
#[derive(Clone)]
pub(crate) struct Tcp(pub(crate) Arc<TcpStream>);

impl Tcp {
    /// Tells whether the client has closed or reset the connection, by peeking at the
    /// socket (see [`ConnectionProbe::peeking`]). The peek goes around tokio's readiness
    /// tracking, so it never steals the connection's wake-ups.
    pub(crate) fn probe(&self) -> ConnectionProbe {
        ConnectionProbe::peeking(Arc::downgrade(&self.0), |socket, _| {
            socket2::SockRef::from(socket).peek(&mut [MaybeUninit::uninit()])
        })
    }

    /// Runs `read` (which fills at most `room` bytes) and, when it fills less than that,
    /// forgets the socket's read readiness, as tokio's own `poll_read` does: a short read
    /// drained the kernel's buffer, and edge-triggered readiness reports any later bytes.
    /// Without this, every message would cost a second `recv` that finds nothing.
    fn read_draining(
        &self,
        room: usize,
        read: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut short = None;
        let result = self.0.try_io(Interest::READABLE, || {
            let n = read()?;
            if n > 0 && n < room {
                // Reported as `WouldBlock` only so that tokio clears the readiness.
                short = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match short {
            Some(n) => Ok(n),
            None => result,
        }
    }
}

impl Socket for Tcp {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = buf.len();
        self.read_draining(room, || self.0.try_read(buf))
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_read_ready(cx)
    }

    fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_write_ready(cx)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        socket2::SockRef::from(&*self.0).shutdown(Shutdown::Write)
    }
}

/// An upgraded connection, with the bytes hyper read past the request.
pub(crate) enum Upgrade {
    /// A plain TCP socket (a hyper server's over `TokioIo<TcpStream>`): read and written
    /// directly.
    Tcp(Tcp, Vec<u8>),
    /// Anything else (TLS, another server's I/O; `axum::serve`'s too, whose connections
    /// hyper-util wraps in a private rewind buffer to sniff the HTTP version): polled.
    Other(Polled<Compat<TokioIo<Upgraded>>>),
}

impl Upgrade {
    /// Takes the socket back out of hyper's upgrade wrapper (a boxed stream behind a rewind
    /// buffer) when it is a TCP socket, so each read and write goes straight to it.
    pub(crate) fn new(upgraded: Upgraded) -> Upgrade {
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => Upgrade::Tcp(
                Tcp(Arc::new(parts.io.into_inner())),
                parts.read_buf.to_vec(),
            ),
            Err(upgraded) => Upgrade::Other(Polled::new(TokioIo::new(upgraded).compat())),
        }
    }
}
