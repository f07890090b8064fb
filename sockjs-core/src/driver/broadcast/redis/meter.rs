//! The subscribing connection's socket, read no further ahead of the subscribing task than
//! a bound.
//!
//! The `redis` crate reads a pub/sub socket as fast as it can and queues every message for
//! the task, without a bound: a node that delivers slower than the cluster publishes to
//! its topics would grow with the backlog. So the socket is handed to the crate wrapped: it
//! reads at most [`READ_AHEAD`] bytes past the last time the task found nothing waiting,
//! then wakes the task and waits for it to catch up (a message larger than the bound comes
//! in steps of it, the task finding nothing yet at each). What the node cannot keep up
//! with waits in the socket and in Redis, whose `client-output-buffer-limit pubsub` cuts a
//! subscriber that stays behind (the connection is lost, and made again, as any other
//! loss).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from the socket past the last time the subscribing task found no message
/// waiting: what the `redis` crate may queue for it.
pub(super) const READ_AHEAD: usize = 1 << 20;

/// The most one read takes, so that it stays within the bound without zeroing much of the
/// buffer it reads into.
const READ_AT_ONCE: usize = 64 << 10;

/// How far the socket's reads are ahead of the subscribing task.
#[derive(Default)]
pub(super) struct Meter(Mutex<Ahead>);

#[derive(Default)]
struct Ahead {
    /// Read since the task last found nothing waiting.
    bytes: usize,
    /// The reader, waiting for the task to catch up.
    reader: Option<Waker>,
    /// The task, as it last found nothing waiting: woken when the reader reaches the
    /// bound, in case what was read is only part of a message (nothing for the task to
    /// take, nothing to wake it).
    task: Option<Waker>,
}

impl Meter {
    fn ahead(&self) -> MutexGuard<'_, Ahead> {
        // Each update under this lock is one step: a panic elsewhere leaves it whole.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How much the socket may be read now: `Pending` at the bound, once the task is woken
    /// to catch up.
    fn poll_room(&self, cx: &Context<'_>) -> Poll<usize> {
        let task = {
            let mut ahead = self.ahead();
            if ahead.bytes < READ_AHEAD {
                return Poll::Ready(READ_AHEAD - ahead.bytes);
            }
            if !ahead
                .reader
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                ahead.reader = Some(cx.waker().clone());
            }
            ahead.task.take()
        };
        if let Some(task) = task {
            task.wake();
        }
        Poll::Pending
    }

    fn read(&self, bytes: usize) {
        let mut ahead = self.ahead();
        ahead.bytes = ahead.bytes.saturating_add(bytes);
    }

    /// The subscribing task (woken by `cx`) found no message waiting: what was read has
    /// been taken (but for part of a message still coming), so the socket may be read
    /// again. Whether anything was read since it last looked (part of a message, when
    /// there was nothing to take).
    pub(super) fn caught_up(&self, cx: &Context<'_>) -> bool {
        let (reader, read) = {
            let mut ahead = self.ahead();
            let read = std::mem::take(&mut ahead.bytes) > 0;
            if !ahead.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                ahead.task = Some(cx.waker().clone());
            }
            (ahead.reader.take(), read)
        };
        if let Some(reader) = reader {
            reader.wake();
        }
        read
    }
}

/// A stream read no further ahead than its [`Meter`] lets it.
pub(super) struct Metered<S> {
    inner: S,
    meter: Arc<Meter>,
}

impl<S> Metered<S> {
    pub(super) fn new(inner: S, meter: Arc<Meter>) -> Metered<S> {
        Metered { inner, meter }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = match self.meter.poll_room(cx) {
            Poll::Ready(room) => room.min(READ_AT_ONCE).min(buf.remaining()),
            Poll::Pending => return Poll::Pending,
        };
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(room));
        let read = Pin::new(&mut self.inner).poll_read(cx, &mut part);
        let n = part.filled().len();
        if let Poll::Ready(Ok(())) = read {
            buf.advance(n);
            self.meter.read(n);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// A socket with always more to read, as much as is asked.
    struct Endless;

    impl AsyncRead for Endless {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            buf.put_slice(&vec![b'x'; buf.remaining()]);
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Count {
        fn get(&self) -> usize {
            self.0.load(Ordering::Relaxed)
        }
    }

    /// Reads (4 MiB at most at a time, as a codec's buffer grown by a large message may
    /// ask) until the meter holds the reader back: the bytes read.
    fn read_all(socket: &mut Metered<Endless>, cx: &mut Context<'_>) -> usize {
        let mut total = 0;
        let mut chunk = vec![0; 4 << 20];
        loop {
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut *socket).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) => total += buf.filled().len(),
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => return total,
            }
            assert!(total <= READ_AHEAD, "read past the bound: {total} B");
        }
    }

    #[test]
    fn the_socket_is_read_no_further_ahead_than_the_task_keeps_up() {
        let meter = Arc::new(Meter::default());
        let mut socket = Metered::new(Endless, meter.clone());
        let reader = Arc::new(Count::default());
        let reader_waker = Waker::from(reader.clone());
        let mut reader_cx = Context::from_waker(&reader_waker);
        let task = Arc::new(Count::default());
        let task_waker = Waker::from(task.clone());
        let task_cx = Context::from_waker(&task_waker);

        // The task finds nothing waiting; the reader reads to the bound, not past it.
        assert!(!meter.caught_up(&task_cx), "nothing read yet");
        assert_eq!(read_all(&mut socket, &mut reader_cx), READ_AHEAD);
        assert_eq!(reader.get(), 0, "not woken while held back");
        // The task is woken: what was read may be only part of a message, which nothing
        // else would wake it for.
        assert_eq!(task.get(), 1);

        // It finds nothing waiting still (part of a message larger than the bound, read
        // meanwhile): the reader is woken, and reads as far again.
        assert!(meter.caught_up(&task_cx), "read since");
        assert_eq!(reader.get(), 1);
        assert_eq!(read_all(&mut socket, &mut reader_cx), READ_AHEAD);
        assert_eq!(task.get(), 2);

        // With nothing held back, a look that finds nothing wakes nobody.
        assert!(meter.caught_up(&task_cx));
        assert!(!meter.caught_up(&task_cx));
        assert_eq!(reader.get(), 2);
    }
}

/// Against a `redis-server` of the test's own: without the binary the test says why and
/// passes, unless `SOCKJS_REQUIRE_REDIS=1` (deploy/test-cluster.sh sets it).
#[cfg(test)]
mod with_redis {
    use std::future::{Future, poll_fn};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use futures_core::Stream;
    use redis::Client;

    use super::super::connect::pubsub;
    use super::*;

    struct RedisServer {
        child: Child,
        port: u16,
    }

    impl RedisServer {
        fn start() -> Option<RedisServer> {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let spawned = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                // No limit on what it holds for a subscriber: the test counts it.
                .args(["--client-output-buffer-limit", "pubsub 0 0 0"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if std::env::var("SOCKJS_REQUIRE_REDIS").as_deref() == Ok("1") => {
                    panic!("SOCKJS_REQUIRE_REDIS=1, but no redis-server: {e}")
                }
                Err(e) => {
                    eprintln!("skipped: no redis-server ({e}; apt-get install redis-server)");
                    return None;
                }
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "redis-server did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(RedisServer { child, port })
        }

        fn client(&self) -> Client {
            Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("url")
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// What Redis holds for its pub/sub clients, in bytes (`omem` in `CLIENT LIST`).
    async fn held_by_redis(client: &Client) -> usize {
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut con)
            .await
            .expect("CLIENT LIST");
        list.split_whitespace()
            .filter_map(|field| field.strip_prefix("omem="))
            .map(|n| n.parse::<usize>().expect("omem"))
            .sum()
    }

    const MESSAGES: usize = 256;
    const SIZE: usize = 256 << 10;

    /// The most a loopback connection's socket buffers hold, both ends (the kernel's
    /// `tcp_rmem` and `tcp_wmem` maximums): what Redis need not hold of a backlog.
    fn socket_buffers() -> usize {
        ["tcp_rmem", "tcp_wmem"]
            .iter()
            .map(|name| {
                std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
                    .ok()
                    .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
                    .unwrap_or(16 << 20)
            })
            .sum()
    }

    /// A subscriber that takes nothing while 64 MiB are published to it: its socket is
    /// read no further than the bound, the rest waits in the socket buffers and in Redis;
    /// taken at last, every message comes, in order, and a message larger than the bound
    /// too.
    async fn backlog_waits_in_redis(redis: &RedisServer) {
        let client = redis.client();
        let meter = Arc::new(Meter::default());
        let (mut sink, mut stream) = pubsub(&client, meter.clone())
            .await
            .expect("subscribing connection")
            .split();
        sink.subscribe("flood").await.expect("SUBSCRIBE");
        let mut publisher = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        for n in 0..MESSAGES {
            let mut payload = vec![b'x'; SIZE];
            payload[..8].copy_from_slice(format!("{n:08}").as_bytes());
            let receivers: usize = redis::cmd("PUBLISH")
                .arg("flood")
                .arg(payload)
                .query_async(&mut publisher)
                .await
                .expect("PUBLISH");
            assert_eq!(receivers, 1);
        }
        // The reader has run into the bound; what the socket buffers hold aside, the
        // backlog is Redis's.
        let expected = (MESSAGES * SIZE).saturating_sub(socket_buffers() + 2 * READ_AHEAD);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let held = held_by_redis(&client).await;
            if held >= expected {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Redis holds {held} B, not the {expected} B past the socket buffers"
            );
            tokio_or_smol_sleep(Duration::from_millis(50)).await;
        }
        let ahead = meter.ahead().bytes;
        assert!(ahead <= READ_AHEAD, "read ahead: {ahead} B");
        for n in 0..MESSAGES {
            let message = next(&mut stream, &meter).await;
            let payload = message.get_payload_bytes();
            assert_eq!(payload.len(), SIZE);
            assert_eq!(&payload[..8], format!("{n:08}").as_bytes());
        }
        // A message larger than the bound comes whole.
        let large = vec![b'y'; 4 * READ_AHEAD];
        let _: usize = redis::cmd("PUBLISH")
            .arg("flood")
            .arg(&large)
            .query_async(&mut publisher)
            .await
            .expect("PUBLISH");
        let message = next(&mut stream, &meter).await;
        assert_eq!(message.get_payload_bytes(), &large[..]);
    }

    /// The next message, taken as the subscribing task takes them, within 10 s.
    async fn next(stream: &mut redis::aio::PubSubStream, meter: &Meter) -> redis::Msg {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut sleep = std::pin::pin!(tokio_or_smol_sleep(Duration::from_secs(10)));
        poll_fn(|cx| {
            match Pin::new(&mut *stream).poll_next(cx) {
                Poll::Ready(next) => return Poll::Ready(next.expect("the connection is open")),
                Poll::Pending => {
                    meter.caught_up(cx);
                }
            }
            if sleep.as_mut().poll(cx).is_ready() || Instant::now() > deadline {
                panic!("no message within 10 s");
            }
            Poll::Pending
        })
        .await
    }

    async fn tokio_or_smol_sleep(wait: Duration) {
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::time::sleep(wait).await;
        } else {
            #[cfg(feature = "redis-smol")]
            smol::Timer::after(wait).await;
        }
    }

    #[test]
    #[cfg(feature = "redis-tokio")]
    fn a_subscriber_that_falls_behind_leaves_the_backlog_in_redis_on_tokio() {
        let Some(redis) = RedisServer::start() else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(backlog_waits_in_redis(&redis));
    }

    #[test]
    #[cfg(feature = "redis-smol")]
    fn a_subscriber_that_falls_behind_leaves_the_backlog_in_redis_on_smol() {
        let Some(redis) = RedisServer::start() else {
            return;
        };
        smol::block_on(backlog_waits_in_redis(&redis));
    }
}
