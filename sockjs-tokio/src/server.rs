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
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::body::Body;
use crate::service::SockJs;

/// The request URI before a router stripped the mount prefix, as a request extension.
///
/// [`serve`] inserts it. The service uses it only to build the hixie-76
/// `Sec-WebSocket-Location` header, which must name the full path. Under axum, copy
/// `axum::extract::OriginalUri` into it (see the crate documentation) if you enable
/// hixie-76.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalUri(pub Uri);

/// The client's socket address, as a request extension (the core's type, so the engine's
/// [`SessionBinding::PeerIp`](sockjs_core::SessionBinding::PeerIp) sees it too). [`serve`]
/// inserts it; under axum, copy `axum::extract::ConnectInfo<SocketAddr>` into it.
/// [`Session::peer_addr`](crate::Session::peer_addr) reads it.
pub use sockjs_core::PeerAddr;

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

    async fn dispatch(&self, mut request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
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
///         let _ = session.send(text);
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
        drain_timeout: Duration::from_secs(10),
        close: (1001, "Server shutting down".to_owned()),
        header_read_timeout: Duration::from_secs(30),
    }
}

/// A running [`serve`] call; configure it, then `.await` it.
pub struct Serve {
    listener: TcpListener,
    routes: Arc<Routes>,
    signal: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    drain_timeout: Duration,
    close: (u16, String),
    header_read_timeout: Duration,
}

impl fmt::Debug for Serve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("listener", &self.listener)
            .field("routes", &self.routes)
            .field("drain_timeout", &self.drain_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .finish_non_exhaustive()
    }
}

impl Serve {
    /// Shuts down gracefully when `signal` completes: stop accepting, close every session
    /// with the shutdown code and reason (so streams, polls and WebSockets end), let
    /// connections finish their responses, and give up on those still open after the drain
    /// timeout.
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Serve
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Some(Box::pin(signal));
        self
    }

    /// How long a graceful shutdown waits for connections to finish (default 10 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Serve {
        self.drain_timeout = timeout;
        self
    }

    /// The close code and reason sessions get at shutdown (default
    /// `1001 "Server shutting down"`).
    pub fn shutdown_close(mut self, code: u16, reason: &str) -> Serve {
        self.close = (code, reason.to_owned());
        self
    }

    /// Longest time a client may take to send a request head, counted from the end of the
    /// previous response (or from accept), so it also closes idle keep-alive connections
    /// and connections that never send anything (slowloris protection). Default 30 s.
    /// Request bodies are bounded separately by
    /// [`Builder::request_body_timeout`](crate::Builder::request_body_timeout).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Serve {
        self.header_read_timeout = timeout;
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
            drain_timeout,
            close,
            header_read_timeout,
        } = self;
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
                        connections.spawn(connection(stream, peer, routes, stop, header_read_timeout));
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
            service.close_all(close.0, &close.1);
        }
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = connections.len(),
                "drain timeout: dropping connections"
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
    header_read_timeout: Duration,
) {
    let service = hyper::service::service_fn(move |request| {
        let routes = routes.clone();
        async move { Ok::<_, Infallible>(routes.dispatch(request, peer).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
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
