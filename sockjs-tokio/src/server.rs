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

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use sockjs_core::driver::Config;
use sockjs_core::{OriginalUri, PeerAddr};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::body::Body;
use crate::service::SockJs;
use crate::socket::ServeIo;

/// SockJS services by mount prefix, for [`serve`].
#[derive(Clone, Default)]
pub struct Routes {
    routes: Vec<(String, SockJs)>,
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(p, _)| p))
            .finish()
    }
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
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() || prefix.starts_with('/') {
            prefix.to_owned()
        } else {
            format!("/{prefix}")
        };
        self.routes.push((prefix, service));
        self.routes.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        self
    }

    /// Every mounted service.
    pub fn services(&self) -> impl Iterator<Item = &SockJs> {
        self.routes.iter().map(|(_, s)| s)
    }

    fn find(&self, path: &str) -> Option<(&str, &SockJs)> {
        self.routes.iter().find_map(|(prefix, service)| {
            let rest = path.strip_prefix(prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((prefix.as_str(), service))
        })
    }

    async fn dispatch(
        &self,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        probe: sockjs_core::driver::ConnectionProbe,
    ) -> Response<Body> {
        let original = request.uri().clone();
        let Some((prefix, service)) = self.find(original.path()) else {
            return plain(StatusCode::NOT_FOUND, "404 Error: Page not found\n");
        };
        let rest = &original.path()[prefix.len()..];
        let rest = if rest.is_empty() { "/" } else { rest };
        let path_and_query = match original.query() {
            Some(query) => format!("{rest}?{query}"),
            None => rest.to_owned(),
        };
        let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
            return plain(StatusCode::BAD_REQUEST, "Bad request target.\n");
        };
        let mut parts = original.clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        let Ok(uri) = Uri::from_parts(parts) else {
            return plain(StatusCode::BAD_REQUEST, "Bad request target.\n");
        };
        *request.uri_mut() = uri;
        request.extensions_mut().insert(OriginalUri(original));
        request.extensions_mut().insert(PeerAddr(peer));
        request.extensions_mut().insert(probe);
        let mut service = service.clone();
        match tower_service::Service::call(&mut service, request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

impl From<SockJs> for Routes {
    fn from(service: SockJs) -> Routes {
        Routes::new().mount("", service)
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

/// Serves SockJS services on a listener with hyper's HTTP/1.1 connection driver (keep-alive,
/// HTTP/1.0, chunked or close-delimited streaming, upgrades).
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
        routes: Arc::new(routes.into()),
        signal: None,
        config: Config::default(),
    }
}

/// A running [`serve`] call; configure it, then `.await` it.
pub struct Serve {
    listener: TcpListener,
    routes: Arc<Routes>,
    signal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    config: Config,
}

impl fmt::Debug for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("routes", &self.routes)
            .field("config", &self.config)
            .finish_non_exhaustive()
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
    /// [`Config::max_head_bytes`] and the shutdown settings. The services' own settings
    /// come from their builders.
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
                        let _ = stream.set_nodelay(true);
                        let routes = routes.clone();
                        let stop = stop_rx.clone();
                        connections.spawn(connection(stream, peer, routes, stop, config.clone()));
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

async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    routes: Arc<Routes>,
    mut stop: watch::Receiver<bool>,
    config: Arc<Config>,
) {
    let io = ServeIo::new(stream, config.write_timeout);
    let probe = io.tcp.probe();
    let service = hyper::service::service_fn(move |request| {
        let routes = routes.clone();
        let probe = probe.clone();
        async move { Ok::<_, Infallible>(routes.dispatch(request, peer, probe).await) }
    });
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
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, %peer, "connection error");
            }
        }
        () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
