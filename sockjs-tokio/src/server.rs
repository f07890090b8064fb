//! A standalone server: hyper's HTTP/1 connection driver under a tiny prefix router, with
//! graceful shutdown.

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use sockjs_core::driver::metrics::{Metrics, Unrouted};
use sockjs_core::driver::web::Mounts;
use sockjs_core::driver::{Config, Connection, ConnectionProbe};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::body::Body;
use crate::service::{SockJs, Target, answer};
use crate::socket::{Tcp, Timed};

/// SockJS services by mount prefix, for [`serve`] and [`serve_connection`]. Cheap to clone
/// (clones share the services).
#[derive(Clone, Default, Debug)]
pub struct Routes {
    mounts: Arc<Mounts<SockJs>>,
    /// Answers to requests outside every mount.
    unrouted: Arc<Unrouted>,
}

impl Routes {
    /// No routes: every request gets 404.
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Mounts a service at a prefix such as `/echo` (`""` or `"/"` for the root). The
    /// service sees paths with the prefix removed, as under axum's `nest_service`, so its
    /// [`Options::prefix`](sockjs_core::Options::prefix) should be empty. The longest
    /// matching prefix wins.
    pub fn mount(mut self, prefix: &str, service: SockJs) -> Routes {
        let mounts = std::mem::take(Arc::make_mut(&mut self.mounts));
        self.mounts = Arc::new(mounts.mount(prefix, service));
        self
    }

    /// Every mounted service.
    pub fn services(&self) -> impl Iterator<Item = &SockJs> {
        self.mounts.values()
    }

    /// A snapshot of each mounted service's counters (see [`metrics`](crate::metrics)),
    /// longest prefix first, labelled `service` by mount prefix (and the service's own
    /// prefix, if any). Keep a clone of the `Routes` handed to [`serve`] to take them while
    /// it runs; render them with
    /// [`metrics::write_prometheus`](crate::metrics::write_prometheus).
    pub fn metrics(&self) -> Vec<Metrics> {
        self.mounts
            .iter()
            .map(|(prefix, service)| {
                let mut metrics = service.metrics();
                metrics.service.insert_str(0, prefix);
                metrics
            })
            .collect()
    }

    /// The answers [`serve`] wrote to requests outside every mount (404), by status;
    /// rendered beside [`metrics`](Self::metrics)
    /// with [`Unrouted::write_prometheus`]. Hyper's own answers (a head too large: 431) are
    /// not seen.
    pub fn unrouted(&self) -> &Unrouted {
        &self.unrouted
    }

    /// Routes one request: the future hyper holds while it is in flight is the answer's
    /// own (see [`answer`]).
    fn dispatch(
        &self,
        request: Request<Incoming>,
        connection: Connection,
    ) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + use<> {
        // Not through `tower::Service::call`, which boxes its future and would have the
        // connection's facts as extensions (a map and a box each, per request); and with
        // the mount prefix left in the path, which the service strips only from the
        // requests the application reads (a rewritten URI and an `OriginalUri` per request
        // otherwise).
        let target = match self.mounts.find(request.uri().path()) {
            Some((prefix, service)) => Target::Service {
                service: service.clone(),
                mount: prefix.len(),
            },
            None => Target::Unrouted(self.unrouted.clone()),
        };
        answer(target, request, Some(connection))
    }
}

impl From<SockJs> for Routes {
    fn from(service: SockJs) -> Routes {
        Routes::new().mount("", service)
    }
}

/// Serves SockJS services on a listener with hyper's HTTP/1.1 connection driver (keep-alive,
/// HTTP/1.0, chunked or close-delimited streaming, upgrades); over TLS with
/// `Config::tls` (feature `tls`).
///
/// Await the returned [`Serve`] to run; it returns only after a graceful shutdown
/// ([`Serve::with_graceful_shutdown`]) or if the listener fails.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use sockjs_tokio::{Routes, SockJs, serve};
/// let echo = SockJs::new(Default::default(), |mut session| async move {
///     while let Some(text) = session.recv().await {
///         let _ = session.send(text).await;
///     }
/// });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// serve(listener, Routes::new().mount("/echo", echo)).await
/// # }
/// ```
pub fn serve(listener: TcpListener, routes: impl Into<Routes>) -> Serve {
    Serve {
        listener,
        routes: routes.into(),
        signal: None,
        config: Config::default(),
    }
}

/// A running [`serve`] call; configure it, then `.await` it.
pub struct Serve {
    listener: TcpListener,
    routes: Routes,
    signal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    config: Config,
}

impl fmt::Debug for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("routes", &self.routes)
            .finish()
    }
}

impl Serve {
    /// Shuts down gracefully when `signal` completes: stop accepting, close every session
    /// with [`Config::shutdown_code`] and [`Config::shutdown_reason`] (so streams, polls and
    /// WebSockets end), let connections finish their responses, and give up on those still
    /// open after [`Config::shutdown_timeout`].
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Serve
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Some(Box::pin(signal));
        self
    }

    /// The server settings: [`Config::header_read_timeout`] (which also closes idle
    /// keep-alive connections), [`Config::write_timeout`], [`Config::max_headers`],
    /// [`Config::max_head_bytes`], the shutdown settings and, with the `tls` feature,
    /// `Config::tls`. The services' own settings come from their builders.
    pub fn config(mut self, config: Config) -> Serve {
        self.config = config;
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    async fn run(self) -> io::Result<()> {
        let Serve {
            listener,
            routes,
            signal,
            config,
        } = self;
        let config = Arc::new(config);
        let mut signal = signal.unwrap_or_else(|| Box::pin(std::future::pending()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tracing::info!(addr = ?listener.local_addr().ok(), "sockjs server listening");
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        config.tune_tcp(&stream);
                        let (routes, stop, config) = (routes.clone(), Some(stop_rx.clone()), config.clone());
                        // The connection's future is made inside the task's: made outside
                        // and awaited inside, the task would hold it twice for the
                        // connection's whole life (once captured, once awaited).
                        connections.spawn(async move {
                            if let Err(error) = connection(stream, peer, routes, stop, config).await {
                                tracing::debug!(%error, %peer, "connection error");
                            }
                        });
                    }
                    Err(error) => {
                        // Usually out of file descriptors: back off briefly.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                () = &mut signal => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!("shutting down: closing sessions");
        drop(listener);
        for service in routes.services() {
            service.close_all(config.shutdown_code, &config.shutdown_reason);
        }
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(config.shutdown_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = connections.len(),
                "shutdown timeout: dropping connections"
            );
            connections.shutdown().await;
        }
        Ok(())
    }
}

impl IntoFuture for Serve {
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Serves one connection given as any byte stream (a TLS stream of one's own, a Unix
/// socket, an in-memory pipe...) with the services of `routes` and the server settings of
/// `config` (as [`Serve::config`]), until the client or a WebSocket closes it; `peer` is
/// the client's address for the sessions ([`PeerAddr`](sockjs_core::PeerAddr)). With
/// `Config::tls` (feature `tls`) the connection starts with a TLS handshake.
///
/// A `tokio::net::TcpStream` is read and written directly and gets the liveness probe
/// ([`ConnectionProbe`]): a receiver that replaces one whose client has gone gets its
/// answer at once. Other streams, TLS included, cannot be probed: there a new receiver
/// waits up to [`Config::abort_grace`] for the previous one to turn out gone. Dropping the
/// future closes the connection (there is no graceful shutdown of a single connection;
/// [`SockJs::close_all`] ends its sessions).
///
/// ```no_run
/// # async fn run(routes: sockjs_tokio::Routes) -> std::io::Result<()> {
/// use std::sync::Arc;
/// let config = Arc::new(sockjs_tokio::Config::default());
/// let listener = tokio::net::UnixListener::bind("/tmp/sockjs.sock")?;
/// loop {
///     let (stream, _) = listener.accept().await?;
///     let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
///     tokio::spawn(sockjs_tokio::serve_connection(stream, peer, routes.clone(), config.clone()));
/// }
/// # }
/// ```
pub async fn serve_connection<T>(
    io: T,
    peer: SocketAddr,
    routes: Routes,
    config: Arc<Config>,
) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    connection(io, peer, routes, None, config).await
}

async fn connection<T>(
    io: T,
    peer: SocketAddr,
    routes: Routes,
    stop: Option<watch::Receiver<bool>>,
    config: Arc<Config>,
) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = config.write_timeout;
    #[cfg(feature = "tls")]
    if let Some(tls) = config.tls.clone() {
        // Boxed: a TLS connection's state (the handshake, then rustls's own buffers beside
        // the connection's) is large, and inline it would size every connection's task,
        // TLS or not.
        return Box::pin(async move {
            let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(io);
            let io = tokio::time::timeout(config.header_read_timeout, handshake)
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            let io = Timed::new(io, timeout);
            http1(io, peer, routes, stop, config, None, true).await
        })
        .await;
    }
    // A plain TCP socket is read and written directly, and probed.
    let mut io = Some(io);
    let any: &mut dyn std::any::Any = &mut io;
    if let Some(stream) = any
        .downcast_mut::<Option<TcpStream>>()
        .and_then(Option::take)
    {
        config.tune_tcp(&stream);
        let tcp = Tcp(Arc::new(stream));
        let probe = Some(tcp.probe());
        return http1(
            Timed::new(tcp, timeout),
            peer,
            routes,
            stop,
            config,
            probe,
            false,
        )
        .await;
    }
    let Some(io) = io else { return Ok(()) };
    http1(
        Timed::new(io, timeout),
        peer,
        routes,
        stop,
        config,
        None,
        false,
    )
    .await
}

/// hyper's HTTP/1.1 connection driver over `io`, until the connection ends or `stop`.
async fn http1<T>(
    io: Timed<T>,
    peer: SocketAddr,
    routes: Routes,
    stop: Option<watch::Receiver<bool>>,
    config: Arc<Config>,
    probe: Option<ConnectionProbe>,
    tls: bool,
) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = Connection::new()
        .with_peer(peer)
        .with_tls(tls)
        .with_probe(probe);
    let service =
        hyper::service::service_fn(move |request| routes.dispatch(request, connection.clone()));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(config.max_head_bytes)
        .max_buf_size(config.max_head_bytes.max(8192));
    if config.max_headers != 100 {
        // hyper's default; any other count costs an allocation per request.
        builder.max_headers(config.max_headers);
    }
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let stopped = async {
        match stop {
            Some(mut stop) => drop(stop.wait_for(|stop| *stop).await),
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    result.map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Routes, connection};
    use crate::SockJs;

    /// A connection's task is held for the connection's whole life, by every idle streaming
    /// or polling client: its future stays small whatever the build's features (a TLS
    /// connection's state is boxed apart, only for TLS connections), and the server's task
    /// holds it once.
    #[test]
    fn connection_future_stays_small() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("address");
            let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (stream, peer) = listener.accept().await.expect("accept");
            let routes = Routes::from(SockJs::new(Default::default(), |_| async {}));
            let config = Arc::new(crate::Config::default());
            let served = connection(stream, peer, routes, None, config);
            let size = size_of_val(&served);
            assert!(size <= 2048, "a connection's future: {size} B");
        });
    }

    /// What hyper holds for a request in flight, a long poll's whole wait, and what it
    /// sizes every connection's slot for a request by: the answer's future alone (the
    /// router hands it over as it is, adding no layer of its own), holding the request's
    /// parts once (640 B; 1,464 B with the router's and the answer's `async fn`s).
    #[test]
    fn a_request_in_flight_holds_one_small_future() {
        fn output_size<A, B, C, F>(_: fn(A, B, C) -> F) -> usize {
            size_of::<F>()
        }
        let size = output_size(crate::service::answer::<hyper::body::Incoming>);
        assert!(size <= 768, "a request's future: {size} B");
    }
}
