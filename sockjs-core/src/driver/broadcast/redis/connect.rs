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
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    // Small commands (a SUBSCRIBE, a ping) go out at once.
    stream.set_nodelay(true)?;
    Ok(Box::new(stream))
}

#[cfg(feature = "redis-smol")]
async fn smol_tcp(host: &str, port: u16) -> io::Result<Box<dyn Socket>> {
    let stream = smol::net::TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(Box::new(FuturesIo(stream)))
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
