//! The connections the driver's WebSocket pump reads and writes.

use std::io;
use std::task::{Context, Poll, Waker};

use crate::driver::scratch::with_read_buffer;

/// A connected byte stream, driven readiness-style: non-blocking reads and writes, and
/// polls that say when to try again. Adapters implement it for their TCP sockets in a few
/// lines; any other stream (TLS, an HTTP library's upgraded connection) fits through
/// [`Polled`].
pub trait Socket: Send + 'static {
    /// Reads without waiting: `Err(WouldBlock)` when nothing is there yet, `Ok(0)` at the
    /// end of input.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes without waiting: `Err(WouldBlock)` when the socket takes nothing now.
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// Pushes out what earlier writes left buffered: `Err(WouldBlock)` while some is left,
    /// and then [`poll_writable`](Socket::poll_writable) says when to try again. Plain
    /// sockets buffer nothing.
    fn try_flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Whether bytes that earlier writes left buffered moved on toward the client since the
    /// last call: a buffering stream (TLS) passes what it holds on bit by bit, while
    /// [`try_flush`](Socket::try_flush) only tells when all of it is out. The write
    /// timeouts count from the last progress, this included, so that a client that reads
    /// slowly is not taken for one that reads nothing. Plain sockets buffer nothing.
    fn progressed(&mut self) -> bool {
        false
    }

    /// Ready once a read may find bytes (or the end, or an error) after one that blocked.
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Ready once a write may make progress after one that blocked.
    fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Closes the write side (sends FIN, or TLS's close) so the peer sees the end after
    /// what was written. Best effort: it must not wait.
    fn shutdown(&mut self) -> io::Result<()>;
}

/// A stream with the usual poll-style I/O, as async runtimes define it. Every futures-io
/// `AsyncRead + AsyncWrite` stream (smol's, async-std's, futures-rustls's) has it; adapters
/// implement it for their runtime's other stream types in a few lines.
pub trait PollIo: Send + Unpin + 'static {
    /// Reads into `buf`: `Ready(Ok(0))` at the end of input.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Writes from `buf`.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    /// Flushes buffered writes.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Flushes and closes the write side.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl<T> PollIo for T
where
    T: futures_io::AsyncRead + futures_io::AsyncWrite + Send + Unpin + 'static,
{
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        futures_io::AsyncRead::poll_read(std::pin::Pin::new(self), cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(std::pin::Pin::new(self), cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(std::pin::Pin::new(self), cx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(std::pin::Pin::new(self), cx)
    }
}

/// Writes all of `data` and flushes it, waiting on the socket when it takes nothing. It
/// sets no time limit: race it with a timer.
pub async fn write_all<S: Socket>(socket: &mut S, mut data: &[u8]) -> io::Result<()> {
    loop {
        if let Poll::Ready(result) = write_now(socket, &mut data) {
            return result;
        }
        std::future::poll_fn(|cx| socket.poll_writable(cx)).await?;
    }
}

/// Writes what the socket takes of `data` now, advancing it, then flushes: `Pending` when
/// the socket takes nothing more for now (wait for [`Socket::poll_writable`]).
pub(crate) fn write_now<S: Socket>(socket: &mut S, data: &mut &[u8]) -> Poll<io::Result<()>> {
    loop {
        let step = if data.is_empty() {
            socket.try_flush().map(|()| 0)
        } else {
            socket.try_write(data)
        };
        match step {
            Ok(0) if data.is_empty() => return Poll::Ready(Ok(())),
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => *data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

/// Most bytes read ahead while polling for readability.
const READ_AHEAD: usize = 4096;
const _: () = assert!(READ_AHEAD <= crate::driver::scratch::READ_BUFFER);

/// Reads dropped while lingering after a close or a refusal (HTTP/1's and hixie-76's
/// loops) before the deadline is looked at and other tasks run: a client that sends
/// faster than the server reads never lets a read come back empty.
pub(crate) const LINGER_READS_BEFORE_YIELD: u32 = 16;

/// Most bytes of a write the stream did not take that are kept to finish it: the rest is
/// left to the caller, so that a connection holds no copy of a whole large answer, and a
/// client that takes it bit by bit shows as progress (the write timeout counts from it).
const KEPT_WRITE: usize = 16 * 1024;

/// A [`Socket`] over any [`PollIo`] stream.
///
/// Readiness is found by polling: [`poll_readable`](Socket::poll_readable) reads ahead
/// into a small buffer that later reads take from, and a write the stream does not take at
/// once is kept (its first 16 KiB, no more: the write reports that much taken) and
/// finished by [`poll_writable`](Socket::poll_writable).
pub struct Polled<T> {
    io: T,
    ahead: Vec<u8>,
    /// Where the unread part of `ahead` starts.
    at: usize,
    /// A read found the end of input (or failed past the read-ahead: see `try_read`).
    eof: bool,
    /// A write accepted but not yet taken by the stream.
    pending: Vec<u8>,
    /// Bytes of `pending` the stream took since a write last reported progress: a client
    /// taking a kept write bit by bit (through a TLS stream's buffer, say) is one that
    /// reads, and the next write says so (see `try_write`).
    drained: usize,
    /// The stream took bytes of `pending` since [`Socket::progressed`] last asked.
    moved: bool,
}

impl<T: PollIo> Polled<T> {
    /// Wraps `io`.
    pub fn new(io: T) -> Polled<T> {
        Polled {
            io,
            ahead: Vec::new(),
            at: 0,
            eof: false,
            pending: Vec::new(),
            drained: 0,
            moved: false,
        }
    }

    /// Pushes the kept write into the stream.
    fn push_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            match self.io.poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n);
                    self.drained = self.drained.saturating_add(n);
                    self.moved = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Written out: the buffer goes, as large as the write that once had to wait (up to a
        // whole message): a connection that is idle, or writes what the stream takes at
        // once, holds none.
        if self.pending.capacity() > 0 {
            self.pending = Vec::new();
        }
        self.io.poll_flush(cx)
    }
}

impl<T: PollIo> Socket for Polled<T> {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at < self.ahead.len() {
            let n = buf.len().min(self.ahead.len() - self.at);
            buf[..n].copy_from_slice(&self.ahead[self.at..self.at + n]);
            self.at += n;
            let short = self.ahead.len() < READ_AHEAD;
            if self.at == self.ahead.len() {
                // Taken: its buffer goes, so that a connection that waits holds none.
                self.ahead = Vec::new();
                self.at = 0;
            }
            // A read-ahead that came back short found the stream empty: reading again
            // would only be told so (a system call on runtimes without readiness state).
            if n == buf.len() || self.eof || short {
                return Ok(n);
            }
            // The read-ahead is small: read on into the rest, so that what a stream holds
            // comes in reads as large as a plain socket's, not in read-ahead pieces with a
            // wait for readiness after each (a short read tells the caller to wait).
            let mut cx = Context::from_waker(Waker::noop());
            return match self.io.poll_read(&mut cx, &mut buf[n..]) {
                Poll::Ready(Ok(0)) => {
                    self.eof = true;
                    Ok(n)
                }
                Poll::Ready(Ok(more)) => Ok(n + more),
                // The bytes before it are the caller's; the connection then ends as at
                // the end of input (every caller ends it alike on either, and holding the
                // error would grow every connection's state).
                Poll::Ready(Err(_)) => {
                    self.eof = true;
                    Ok(n)
                }
                Poll::Pending => Ok(n),
            };
        }
        if self.eof {
            return Ok(0);
        }
        // Polling without a task: `poll_readable` registers the real one before the pump
        // waits.
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_read(&mut cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.pending.is_empty() {
            let mut cx = Context::from_waker(Waker::noop());
            match self.push_pending(&mut cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {
                    // The stream took part of the kept write (here, or in `poll_writable`):
                    // as much of this one is kept in its place and reported taken, so
                    // that the caller sees the client's pace (its write timeout counts
                    // from progress) while no more than `KEPT_WRITE` is held.
                    // Told once: `progressed` does not tell the same bytes again.
                    let room = KEPT_WRITE.saturating_sub(self.pending.len());
                    let kept = std::mem::take(&mut self.drained).min(room).min(buf.len());
                    if kept == 0 {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    self.moved = false;
                    self.pending.extend_from_slice(&buf[..kept]);
                    return Ok(kept);
                }
            }
        }
        self.drained = 0;
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_write(&mut cx, buf) {
            Poll::Ready(Ok(n)) => Ok(n),
            Poll::Ready(Err(e)) => Err(e),
            Poll::Pending => {
                // Keep (the start of) it and report that taken: `try_flush` says it is not
                // out yet, and `poll_writable` finishes it.
                let kept = buf.len().min(KEPT_WRITE);
                self.pending.extend_from_slice(&buf[..kept]);
                Ok(kept)
            }
        }
    }

    fn try_flush(&mut self) -> io::Result<()> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.push_pending(&mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.at < self.ahead.len() || self.eof {
            return Poll::Ready(Ok(()));
        }
        // Into the thread's scratch buffer, keeping only what came: a connection that
        // waits here (every TLS one, those under hyper) holds no read buffer of its own.
        let Polled { io, ahead, at, .. } = self;
        let result = with_read_buffer(|scratch| {
            let scratch = &mut scratch[..READ_AHEAD];
            let result = io.poll_read(cx, scratch);
            if let Poll::Ready(Ok(n)) = result {
                ahead.clear();
                ahead.extend_from_slice(&scratch[..n]);
                *at = 0;
            }
            result
        });
        match result {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.push_pending(cx)
    }

    /// What the stream took of a kept write. What the stream buffers of its own (a TLS
    /// stream's records) shows only as the room it makes for the kept bytes: the adapters
    /// keep rustls's buffer small (`tls::tune`, feature `tls`) for this.
    fn progressed(&mut self) -> bool {
        // Told once: the next write does not take the same bytes' room as progress again.
        if std::mem::take(&mut self.moved) {
            self.drained = 0;
            return true;
        }
        false
    }

    fn shutdown(&mut self) -> io::Result<()> {
        let mut cx = Context::from_waker(Waker::noop());
        // A kept write goes first: shut down, the stream would take no more (a TLS stream
        // queues its close_notify after what it holds, not after what we hold). If it
        // cannot go now, there is no clean end: a close_notify would tell the client that
        // a cut stream ended whole (a write that failed or timed out), so the connection
        // is dropped without one, and the client sees the cut for what it is.
        // (What the stream holds itself it sends before its close_notify.)
        if let Poll::Ready(Err(e)) = self.push_pending(&mut cx) {
            return Err(e);
        }
        if !self.pending.is_empty() {
            return Ok(());
        }
        match self.io.poll_shutdown(&mut cx) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream holding `data`, taken in reads of at most `step` bytes; then nothing yet,
    /// or the end, or an error.
    struct Held {
        data: Vec<u8>,
        step: usize,
        then: Option<io::ErrorKind>,
    }

    impl PollIo for Held {
        fn poll_read(&mut self, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            if self.data.is_empty() {
                return match self.then {
                    None => Poll::Pending,
                    Some(io::ErrorKind::UnexpectedEof) => Poll::Ready(Ok(0)),
                    Some(kind) => Poll::Ready(Err(kind.into())),
                };
            }
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data.drain(..n);
            Poll::Ready(Ok(n))
        }
        fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A stream that takes no writes until opened, then all of them.
    struct Gate {
        open: bool,
        written: usize,
        /// Whether it was shut down (a TLS stream's close_notify).
        shut: bool,
    }

    impl PollIo for Gate {
        fn poll_read(&mut self, _: &mut Context<'_>, _: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            if !self.open {
                return Poll::Pending;
            }
            self.written += buf.len();
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    /// A write the stream did not take is kept until it is out, and then its buffer goes:
    /// a TLS connection that once had to wait for a large write holds no memory for it
    /// once it is written.
    #[test]
    fn a_kept_write_holds_no_buffer_once_it_is_out() {
        let mut socket = Polled::new(Gate {
            open: false,
            written: 0,
            shut: false,
        });
        let message = vec![b'x'; 200 * 1024];
        // A large write is kept in part only: the caller goes on with the rest once the
        // stream took that (a client taking it bit by bit shows as progress).
        assert_eq!(socket.try_write(&message).expect("kept"), KEPT_WRITE);
        assert!(socket.pending.capacity() < 2 * KEPT_WRITE);
        assert_eq!(
            socket
                .try_write(&message[KEPT_WRITE..])
                .map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        assert_eq!(
            socket.try_flush().map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        socket.io.open = true;
        socket.try_flush().expect("flushed");
        assert_eq!(socket.io.written, KEPT_WRITE);
        assert_eq!(socket.pending.capacity(), 0);
        let rest = &message[KEPT_WRITE..];
        assert_eq!(socket.try_write(rest).expect("written"), rest.len());
        // Writes the stream takes at once keep nothing either.
        assert_eq!(socket.try_write(b"small").expect("written"), 5);
        assert_eq!(socket.pending.capacity(), 0);
    }

    /// A stream that takes at most `budget` more bytes of writes, then none until given
    /// more (a TLS stream over a client that reads slowly).
    struct Trickle {
        budget: usize,
        written: Vec<u8>,
    }

    impl PollIo for Trickle {
        fn poll_read(&mut self, _: &mut Context<'_>, _: &mut [u8]) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
        fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.budget);
            if n == 0 {
                return Poll::Pending;
            }
            self.budget -= n;
            self.written.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A client that takes a kept write bit by bit shows as progress at its own pace: each
    /// write after the stream took some of the kept bytes takes as many of its own (the
    /// pump's and HTTP/1's write timeouts count from the last write that took any), and no
    /// more than `KEPT_WRITE` is ever held; in order.
    #[test]
    fn a_kept_write_taken_bit_by_bit_shows_as_progress() {
        let mut socket = Polled::new(Trickle {
            budget: 0,
            written: Vec::new(),
        });
        let message: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
        let mut at = socket.try_write(&message).expect("kept");
        assert_eq!(at, KEPT_WRITE);
        assert_eq!(
            socket.try_write(&message[at..]).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "nothing taken, no progress"
        );
        let mut cx = Context::from_waker(Waker::noop());
        for round in 0..20 {
            socket.io.budget = 1000;
            if round % 2 == 0 {
                // Taken while the caller waits: told by `progressed`, once; the next write
                // does not take it for progress again.
                assert!(socket.poll_writable(&mut cx).is_pending());
                assert!(socket.progressed(), "round {round}: taken while waiting");
                assert!(!socket.progressed(), "round {round}: told once");
                assert_eq!(
                    socket.try_write(&message[at..]).map_err(|e| e.kind()),
                    Err(io::ErrorKind::WouldBlock),
                    "round {round}: told once"
                );
            } else {
                // Taken in a write: as many of the write's bytes are kept in their place.
                let took = socket.try_write(&message[at..]).expect("progress");
                assert_eq!(took, 1000, "round {round}");
                at += took;
                assert!(!socket.progressed(), "round {round}: told by the write");
            }
            assert!(socket.pending.len() <= KEPT_WRITE);
        }
        assert_eq!(at, KEPT_WRITE + 10 * 1000);
        // The client stops reading: no progress, told by neither.
        socket.io.budget = 0;
        assert!(socket.poll_writable(&mut cx).is_pending());
        assert!(!socket.progressed());
        assert_eq!(
            socket.try_write(&message[at..]).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        assert!(!socket.progressed());
        // Bytes taken are told once, by whichever asks first.
        socket.io.budget = 500;
        assert!(socket.poll_writable(&mut cx).is_pending());
        assert!(socket.progressed());
        assert_eq!(
            socket.try_write(&message[at..]).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "told by `progressed` already"
        );
        socket.io.budget = 500;
        let took = socket.try_write(&message[at..]).expect("progress");
        assert_eq!(took, 500);
        at += took;
        assert!(!socket.progressed(), "told by the write already");
        socket.io.budget = usize::MAX;
        socket.try_flush().expect("flushed");
        assert!(
            socket.io.written == message[..at],
            "every byte once, in order"
        );
    }

    /// A shutdown with a kept write that cannot go out yet does not shut the stream down (a
    /// TLS stream's close_notify would claim the cut stream ended whole); once the kept
    /// write is out, it does, after it.
    #[test]
    fn no_clean_end_before_a_kept_write_is_out() {
        let mut socket = Polled::new(Gate {
            open: false,
            written: 0,
            shut: false,
        });
        assert_eq!(socket.try_write(b"last words").expect("kept"), 10);
        socket.shutdown().expect("no error");
        assert!(!socket.io.shut, "no close_notify ahead of the kept bytes");
        socket.io.open = true;
        socket.shutdown().expect("shut down");
        assert_eq!((socket.io.written, socket.io.shut), (10, true));
    }

    fn readable(socket: &mut Polled<Held>) {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(socket.poll_readable(&mut cx), Poll::Ready(Ok(()))));
    }

    /// Waiting, and once what it read ahead is taken, a socket holds no read buffer (a
    /// TLS connection, or one under hyper, idle between messages or requests).
    #[test]
    fn a_waiting_socket_holds_no_read_buffer() {
        let mut socket = Polled::new(Held {
            data: vec![5; 100],
            step: 100,
            then: None,
        });
        let mut cx = Context::from_waker(Waker::noop());
        assert!(socket.poll_readable(&mut cx).is_ready());
        assert_eq!(socket.ahead.len(), 100);
        let mut buf = [0; 40];
        assert_eq!(socket.try_read(&mut buf).expect("read"), 40);
        assert_eq!(socket.try_read(&mut buf).expect("read"), 40);
        assert_eq!(socket.try_read(&mut buf).expect("read"), 20);
        assert_eq!(buf[..20], [5; 20]);
        assert_eq!(socket.ahead.capacity(), 0, "taken, given back");
        assert!(socket.poll_readable(&mut cx).is_pending());
        assert_eq!(socket.ahead.capacity(), 0, "nothing came: nothing held");
    }

    /// After the read-ahead, a read goes on into the stream: 16 KiB waiting come in one
    /// read of 16 KiB, as from a plain socket, in order.
    #[test]
    fn a_read_takes_more_than_the_read_ahead() {
        let data: Vec<u8> = (0..16 * 1024).map(|i| (i % 251) as u8).collect();
        let held = Held {
            data: data.clone(),
            step: 16 * 1024,
            then: None,
        };
        let mut socket = Polled::new(held);
        readable(&mut socket);
        let mut buf = vec![0; 16 * 1024];
        assert_eq!(socket.try_read(&mut buf).expect("read"), 16 * 1024);
        assert_eq!(buf, data);
        assert_eq!(
            socket.try_read(&mut buf).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
    }

    /// The end, or an error, found past the read-ahead comes with the next read (as the
    /// end), after the bytes before it.
    #[test]
    fn the_end_or_an_error_past_the_read_ahead_comes_next() {
        for then in [io::ErrorKind::UnexpectedEof, io::ErrorKind::ConnectionReset] {
            // The read-ahead takes all there is; the read after it finds the end.
            let held = Held {
                data: vec![7; READ_AHEAD],
                step: READ_AHEAD,
                then: Some(then),
            };
            let mut socket = Polled::new(held);
            readable(&mut socket);
            let mut buf = vec![0; 8192];
            assert_eq!(socket.try_read(&mut buf).expect("read"), READ_AHEAD);
            readable(&mut socket);
            assert_eq!(socket.try_read(&mut buf).map_err(|e| e.kind()), Ok(0));
        }
    }
}
