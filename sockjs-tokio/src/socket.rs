//! Connections: the TCP socket the server shares between hyper, the WebSocket pump and the
//! liveness probe; the write timeout around whatever hyper is given; and any other
//! upgraded stream (TLS, another server's I/O).

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sockjs_core::driver::{ConnectionProbe, Polled, Socket};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt as _};

/// A TCP socket shared by reference: reads and writes go straight to the descriptor
/// (`try_read`/`try_write`) and only readiness is awaited.
#[derive(Clone)]
pub(crate) struct Tcp(pub(crate) Arc<TcpStream>);

impl Tcp {
    /// Tells whether the client has closed or reset the connection, by peeking at the
    /// socket (see [`ConnectionProbe::peeking`]). The peek goes around tokio's readiness
    /// tracking, so it never steals hyper's wake-ups.
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

impl AsyncRead for Tcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            // Reads into the unfilled part without zeroing it first.
            let room = buf.remaining();
            match self.read_draining(room, || self.0.try_read_buf(buf)) {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Tcp {
    /// Writes with `write` once the socket takes bytes.
    fn poll_write_with(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match write(&self.0) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |stream| stream.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_with(cx, |stream| stream.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().shutdown())
    }
}

/// What the server gives hyper: a connection whose every write (and flush) fails once it
/// has waited on the client for the write timeout, so a client that stops reading loses
/// its connection instead of holding it.
pub(crate) struct Timed<T> {
    pub(crate) io: T,
    write_timeout: Duration,
    /// Running while a write waits for the client.
    blocked: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Timed<T> {
    pub(crate) fn new(io: T, write_timeout: Duration) -> Timed<T> {
        Timed {
            io,
            write_timeout,
            blocked: None,
        }
    }

    /// A write's outcome, or the timeout's once it waited that long.
    fn bound<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.blocked = None;
            return poll;
        }
        let timeout = self.write_timeout;
        let blocked = self
            .blocked
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(blocked.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "write timed out",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Timed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Timed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.bound(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.bound(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.bound(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// An upgraded connection, with the bytes hyper read past the request.
pub(crate) enum Upgrade {
    /// The server's own plain TCP socket, or axum's: read and written directly.
    Tcp(Tcp, Vec<u8>),
    /// Anything else (TLS, another server's I/O): polled.
    Other(Polled<Compat<TokioIo<Upgraded>>>),
}

impl Upgrade {
    /// Takes the socket back out of hyper's upgrade wrapper (a boxed stream behind a rewind
    /// buffer) when it is a TCP socket, so each read and write goes straight to it.
    pub(crate) fn new(upgraded: Upgraded) -> Upgrade {
        let upgraded = match upgraded.downcast::<TokioIo<Timed<Tcp>>>() {
            Ok(parts) => return Upgrade::Tcp(parts.io.into_inner().io, parts.read_buf.to_vec()),
            Err(upgraded) => upgraded,
        };
        match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => Upgrade::Tcp(
                Tcp(Arc::new(parts.io.into_inner())),
                parts.read_buf.to_vec(),
            ),
            Err(upgraded) => Upgrade::Other(Polled::new(TokioIo::new(upgraded).compat())),
        }
    }
}
