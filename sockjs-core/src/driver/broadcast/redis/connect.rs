//! The subscribing connection's socket: connected here, where the `redis` crate would
//! connect it itself, so that it can be read through a [`Meter`].

use std::io;
#[cfg(feature = "redis-smol")]
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "redis-smol")]
use std::task::{Context, Poll};

use redis::aio::PubSub;
use redis::{Client, ConnectionAddr, RedisResult};
#[cfg(feature = "redis-smol")]
use tokio::io::ReadBuf;
use tokio::io::{AsyncRead, AsyncWrite};

use super::meter::{Meter, Metered};

/// A pub/sub connection whose socket is read no further ahead of its task than `meter`
/// lets it; where the `redis` crate connects itself (see [`connect`]), the crate's own,
/// whose reads have no such bound.
pub(super) async fn pubsub(client: &Client, meter: Arc<Meter>) -> RedisResult<PubSub> {
    let info = client.get_connection_info();
    match connect(info.addr()).await {
        Some(socket) => PubSub::new(info.redis_settings(), Metered::new(socket?, meter)).await,
        None => client.get_async_pubsub().await,
    }
}

/// A socket as the `redis` crate takes it.
pub(super) trait Socket: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Socket for T {}

/// Connects to `addr` over TCP on the runtime the `redis` crate runs this connection on:
/// tokio inside a tokio runtime (with `redis-tokio`), smol otherwise (with `redis-smol`).
/// `None` where the crate has to connect itself: an address that is not plain TCP (a Unix
/// socket, or TLS where the crate's TLS features are on). With `redis-tokio` alone and no
/// tokio runtime to connect from, an error (the crate would panic), retried as any other.
async fn connect(addr: &ConnectionAddr) -> Option<RedisResult<Box<dyn Socket>>> {
    let ConnectionAddr::Tcp(host, port) = addr else {
        return None;
    };
    #[cfg(feature = "redis-tokio")]
    if tokio::runtime::Handle::try_current().is_ok() {
        return Some(tokio_tcp(host, *port).await.map_err(Into::into));
    }
    #[cfg(feature = "redis-smol")]
    return Some(smol_tcp(host, *port).await.map_err(Into::into));
    #[cfg(not(feature = "redis-smol"))]
    Some(Err(io::Error::other(
        "redis-tokio connects from a tokio runtime only: run the backend's tasks on tokio",
    )
    .into()))
}

#[cfg(feature = "redis-tokio")]
async fn tokio_tcp(host: &str, port: u16) -> io::Result<Box<dyn Socket>> {
    let addrs = tokio::net::lookup_host((host, port)).await?.collect();
    let stream = first_to_connect(addrs, tokio::net::TcpStream::connect).await?;
    // Small commands (a SUBSCRIBE, a ping) go out at once.
    stream.set_nodelay(true)?;
    Ok(Box::new(stream))
}

#[cfg(feature = "redis-smol")]
async fn smol_tcp(host: &str, port: u16) -> io::Result<Box<dyn Socket>> {
    let addrs = smol::net::resolve((host, port)).await?;
    let stream = first_to_connect(addrs, smol::net::TcpStream::connect).await?;
    stream.set_nodelay(true)?;
    Ok(Box::new(FuturesIo(stream)))
}

/// The first of `addrs` to connect, all tried at once (as the `redis` crate connects): an
/// address that drops packets (a broken IPv6 route beside a working IPv4 one) costs
/// nothing while another answers, where trying them in turn would spend the whole connect
/// timeout on it, at every retry. Fails with the last error once every attempt failed.
async fn first_to_connect<S, F>(
    addrs: Vec<std::net::SocketAddr>,
    connect: impl Fn(std::net::SocketAddr) -> F,
) -> io::Result<S>
where
    F: std::future::Future<Output = io::Result<S>>,
{
    let mut tries: Vec<Option<std::pin::Pin<Box<F>>>> = addrs
        .into_iter()
        .map(|addr| Some(Box::pin(connect(addr))))
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    std::future::poll_fn(|cx| {
        for slot in &mut tries {
            let Some(attempt) = slot else { continue };
            match attempt.as_mut().poll(cx) {
                std::task::Poll::Ready(Ok(stream)) => return std::task::Poll::Ready(Ok(stream)),
                std::task::Poll::Ready(Err(error)) => {
                    last = error;
                    *slot = None;
                }
                std::task::Poll::Pending => {}
            }
        }
        if tries.iter().all(Option::is_none) {
            let error = std::mem::replace(&mut last, io::Error::other("already failed"));
            return std::task::Poll::Ready(Err(error));
        }
        std::task::Poll::Pending
    })
    .await
}

/// A `futures-io` stream (smol's) with tokio's traits, which the `redis` crate takes.
#[cfg(feature = "redis-smol")]
struct FuturesIo<T>(T);

#[cfg(feature = "redis-smol")]
impl<T: futures_io::AsyncRead + Unpin> AsyncRead for FuturesIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = match Pin::new(&mut self.0).poll_read(cx, buf.initialize_unfilled()) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

#[cfg(feature = "redis-smol")]
impl<T: futures_io::AsyncWrite + Unpin> AsyncWrite for FuturesIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::net::SocketAddr;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn now<T>(future: impl Future<Output = T>) -> Poll<T> {
        pin!(future).poll(&mut Context::from_waker(Waker::noop()))
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// One address that never answers (port 1 here) does not hold up one that connects.
    #[test]
    fn the_first_address_to_connect_wins_over_one_that_never_answers() {
        let connect = |a: SocketAddr| async move {
            match a.port() {
                1 => std::future::pending().await,
                2 => Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
                port => Ok(port),
            }
        };
        let addrs = vec![addr(1), addr(2), addr(7)];
        assert!(matches!(
            now(first_to_connect(addrs, connect)),
            Poll::Ready(Ok(7))
        ));
        // Only silence and refusals: waits for the silent one, fails once all failed.
        assert!(now(first_to_connect(vec![addr(1), addr(2)], connect)).is_pending());
        let failed = now(first_to_connect(vec![addr(2), addr(2)], connect));
        assert!(matches!(
            failed,
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused
        ));
        let none = now(first_to_connect(Vec::new(), connect));
        assert!(matches!(none, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::NotFound));
    }
}
