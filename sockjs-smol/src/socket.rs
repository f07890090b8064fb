//! The connection's socket, shared by its task, the driver's WebSocket pump and the
//! liveness probe.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_io::Async;
use sockjs_core::driver::{ConnectionProbe, Socket};

/// A connection's socket. async-io keeps it non-blocking, so reads and writes go straight
/// to the descriptor and only readiness is awaited.
#[derive(Clone)]
pub(crate) struct Stream(pub(crate) Arc<Async<TcpStream>>);

impl Stream {
    /// Tells whether the client has closed or reset the connection, by peeking at the
    /// socket (see [`ConnectionProbe::peeking`]).
    pub(crate) fn probe(&self) -> ConnectionProbe {
        ConnectionProbe::peeking(Arc::downgrade(&self.0), |socket, buf| {
            socket.get_ref().peek(buf)
        })
    }
}

impl Socket for Stream {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&mut self.0.get_ref()).read(buf)
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&mut self.0.get_ref()).write(buf)
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_readable(cx)
    }

    fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_writable(cx)
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.0.get_ref().shutdown(Shutdown::Write)
    }
}
