//! A standalone server: the driver's HTTP/1 connections (the same as sockjs-smol's) under
//! a tiny prefix router, with graceful shutdown.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;

use sockjs_core::driver::http1::{self, Host};
use sockjs_core::driver::metrics::{Metrics, Unrouted};
use sockjs_core::driver::web::{Fallback, Mounts, ServerHeaders};
use sockjs_core::driver::{
    ACCEPT_BACKOFF, AcceptError, Config, Connection, ConnectionRoom, OpenConnections, Polled,
    Runtime, Service, Socket, WebSocket,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::compat::TokioAsyncReadCompatExt as _;

use crate::runtime::Tokio;
use crate::service::SockJs;
use crate::socket::Tcp;

/// SockJS services by mount prefix, for [`serve`] and [`serve_connection`], with what
/// answers the requests outside them ([`fallback`](Routes::fallback)) and the headers every
/// response gets ([`header`](Routes::header)): the same as sockjs-smol's `Server`. Cheap
/// to clone (clones share the services).
#[derive(Clone, Default)]
pub struct Routes {
    mounts: Arc<Mounts<SockJs>>,
    /// Answers to requests outside every mount.
    unrouted: Arc<Unrouted>,
    /// Answers requests outside every mount; `None`: 404.
    fallback: Option<Fallback>,
    /// Added to every response that lacks them.
    headers: Arc<ServerHeaders>,
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("mounts", &self.mounts)
            .field("fallback", &self.fallback.is_some())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
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
    ///
    /// # Panics
    ///
    /// If the prefix is mounted already (`/echo`, `echo` and `/echo/` are one prefix, as on
    /// sockjs-smol's `Server::service`), as axum's router panics on a route given twice;
    /// sockjs-smol's `Server::service` refuses it with `OptionsError::Prefix`.
    pub fn mount(mut self, prefix: &str, service: SockJs) -> Routes {
        let mounts = std::mem::take(Arc::make_mut(&mut self.mounts));
        self.mounts = Arc::new(mounts.mount(prefix, service));
        self
    }

    /// Answers the requests outside every mount with `handler` instead of 404: the
    /// application's own pages, a health check. The request (whole body read, bounded by
    /// the largest mounted service's `max_request_body`, its default of 256 KiB while none
    /// is mounted) carries the client's
    /// [`PeerAddr`](sockjs_core::PeerAddr); a `HEAD` is answered without the body. The
    /// same as sockjs-smol's `Server::fallback`; under axum, its own router does this.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Response, StatusCode};
    /// let routes = sockjs_tokio::Routes::new().fallback(|request| {
    ///     let mut response = Response::new(Bytes::new());
    ///     if request.uri().path() == "/health" {
    ///         *response.body_mut() = Bytes::from_static(b"ok");
    ///     } else {
    ///         *response.status_mut() = StatusCode::NOT_FOUND;
    ///     }
    ///     response
    /// });
    /// # drop(routes);
    /// ```
    pub fn fallback<F>(mut self, handler: F) -> Routes
    where
        F: Fn(http::Request<Bytes>) -> http::Response<Bytes> + Send + Sync + 'static,
    {
        self.fallback = Some(Arc::new(handler));
        self
    }

    /// Adds a header to every response [`serve`] and [`serve_connection`] write (the
    /// services', the [`fallback`](Routes::fallback)'s, the 404s and 503s, and WebSocket
    /// handshakes) that does not have that header already: e.g. the name of the node
    /// behind a load balancer. Not to the error answers to requests that could not be read
    /// (400, 408, 413, 431). Setting a name again replaces its value. The same as
    /// sockjs-smol's `Server::header`.
    ///
    /// # Panics
    ///
    /// On a field that frames the message or the connection (see
    /// [`ServerHeaders::insert`]).
    pub fn header(mut self, name: http::HeaderName, value: http::HeaderValue) -> Routes {
        Arc::make_mut(&mut self.headers).insert(name, value);
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

    /// The answers [`serve`] wrote to requests that reached no mounted service (a path
    /// outside every mount: 404; a head too large: 431; a malformed request: 400; ...), by
    /// status; rendered beside [`metrics`](Self::metrics) with
    /// [`Unrouted::write_prometheus`].
    pub fn unrouted(&self) -> &Unrouted {
        &self.unrouted
    }
}

impl From<SockJs> for Routes {
    fn from(service: SockJs) -> Routes {
        Routes::new().mount("", service)
    }
}

/// Serves SockJS services on a listener with the driver's HTTP/1.x connections (keep-alive,
/// HTTP/1.0, chunked or close-delimited streaming, upgrades; see
/// [`http1`](sockjs_core::driver::http1) for every bound), the same as sockjs-smol's
/// server; over TLS with `Config::tls` (feature `tls`). Under axum or hyper, mount a
/// [`SockJs`] service instead.
///
/// Await the returned [`Serve`] to run; it returns only after a graceful shutdown
/// ([`Serve::with_graceful_shutdown`]), or if the listener fails for good (closed, shut
/// down, not listening: [`AcceptError::Listener`]), then with that error once what was
/// open has shut down gracefully. A connection that fails before it is accepted is
/// skipped, and a want of file descriptors or memory, or a refusal by the system's
/// policy, waited out ([`ACCEPT_BACKOFF`](sockjs_core::driver::ACCEPT_BACKOFF)).
///
/// [`AcceptError::Listener`]: sockjs_core::driver::AcceptError::Listener
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
    /// WebSockets end) and open no new one (`503`), keep serving the closed sessions'
    /// requests on kept-alive connections (a client that polls again gets the close frame;
    /// anything else gets `503`), wait until every session, handler task and connection is
    /// done (HTTP sessions stay CLOSING for their disconnect delay; idle connections close
    /// once no session is left), and give up on what is still open after
    /// [`Config::shutdown_timeout`].
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Serve
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Some(Box::pin(signal));
        self
    }

    /// The server settings: [`Config::header_read_timeout`] (which also closes idle
    /// keep-alive connections), [`Config::body_read_timeout`], [`Config::write_timeout`],
    /// [`Config::max_headers`], [`Config::max_head_bytes`], [`Config::max_connections`],
    /// the TCP settings, the shutdown settings and, with the `tls` feature, `Config::tls`. The services' own settings
    /// come from their builders, and so do their WebSockets' [`Config::write_timeout`],
    /// [`Config::close_linger`] and [`Config::message_read_timeout`] (a WebSocket belongs
    /// to its service, under this server or any other): give both configs the same values
    /// to have one setting.
    pub fn config(mut self, config: Config) -> Serve {
        self.config = config;
        self
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    async fn run(self) -> io::Result<()> {
        self.run_with(Arc::new(Mutex::new(JoinSet::new()))).await
    }

    /// [`run`](Serve::run), with the set its WebSocket tasks go to.
    async fn run_with(self, websockets: Arc<WebSockets>) -> io::Result<()> {
        let Serve {
            listener,
            routes,
            signal,
            config,
        } = self;
        let config = Arc::new(config);
        let mut signal = signal.unwrap_or_else(|| Box::pin(std::future::pending()));
        let (stop_tx, stop_rx) = watch::channel(false);
        // Open connections, WebSockets included, for the accept loop's bound and the
        // shutdown's wait (a `JoinSet` counts finished tasks until they are joined, and
        // nothing joins them while shutdown waits).
        let open = OpenConnections::reporting_to(config.max_connections, routes.unrouted.clone());
        let host = Arc::new(Standalone {
            stop: Some(stop_rx),
            websockets: Some(Arc::downgrade(&websockets)),
            open: Some(open.clone()),
            ..Standalone::new(routes.clone(), config.clone())
        });
        let mut connections = JoinSet::new();
        tracing::info!(addr = ?listener.local_addr().ok(), "sockjs server listening");
        // A connection accepted at `max_connections`, held (not yet counted) until an idle
        // keep-alive connection closed for it or another ended, and its wait for room
        // (which asks once); the next ones wait in the listen backlog meanwhile. Kept
        // outside the `select!`, whose other branches would drop them.
        let mut held = None;
        let mut room: Option<ConnectionRoom<'_>> = None;
        // The listener's error, when it failed for good.
        let mut broken = None;
        loop {
            tokio::select! {
                accepted = listener.accept(), if held.is_none() => match accepted {
                    Ok(accepted) => {
                        held = Some(accepted);
                        room = Some(open.room_for_accepted());
                    }
                    Err(error) => match AcceptError::of(&error) {
                        AcceptError::Connection => {
                            tracing::debug!(%error, "a connection failed before it was accepted");
                        }
                        AcceptError::Listener => {
                            tracing::error!(%error, "the listener failed: shutting down");
                            broken = Some(error);
                            break;
                        }
                        // Usually out of file descriptors: back off briefly.
                        _ => {
                            tracing::warn!(%error, "accept failed");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                        }
                    },
                },
                () = std::future::poll_fn(|cx| match room.as_mut() {
                    Some(room) => std::pin::Pin::new(room).poll(cx),
                    None => std::task::Poll::Pending,
                }), if held.is_some() => {
                    room = None;
                    if let Some((stream, peer)) = held.take() {
                        let host = host.clone();
                        // The connection's future is made inside the task's: made outside
                        // and awaited inside, the task would hold it twice for the
                        // connection's whole life (once captured, once awaited).
                        connections.spawn(open.enter().counting(async move {
                            if let Err(error) = connection(stream, peer, host).await {
                                tracing::debug!(%error, %peer, "connection error");
                            }
                        }));
                    }
                },
                () = &mut signal => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                // A finished WebSocket task is let go at once, not when the next one starts
                // (a set with none left to join answers `None`, and waits for the next
                // turn of the loop).
                Some(_) = std::future::poll_fn(|cx| lock(&websockets).poll_join_next(cx)) => {}
            }
        }
        tracing::info!("shutting down: closing sessions");
        // A connection held at the bound is not served; nothing is asked to close for it.
        drop(room);
        drop(held);
        drop(listener);
        let _ = stop_tx.send(true);
        if !host.drain(&open).await {
            tracing::warn!("shutdown timeout: dropping connections");
        }
        // Aborts what the timeout left, and joins the rest.
        connections.shutdown().await;
        let mut websockets = std::mem::take(&mut *lock(&websockets));
        websockets.shutdown().await;
        broken.map_or(Ok(()), Err)
    }
}

/// The server's WebSocket tasks (a `JoinSet`, so that they end with the server: aborted
/// when the shutdown's time is up, or when the server's future is dropped, as
/// sockjs-smol's executor does with its tasks).
type WebSockets = Mutex<JoinSet<()>>;

fn lock(websockets: &WebSockets) -> std::sync::MutexGuard<'_, JoinSet<()>> {
    websockets.lock().unwrap_or_else(PoisonError::into_inner)
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
/// A `tokio::net::TcpStream` gets the server's TCP settings ([`Config::tune_tcp`]), is
/// read and written directly and gets the liveness probe
/// ([`ConnectionProbe`](sockjs_core::driver::ConnectionProbe)): a receiver that replaces
/// one whose client has gone gets its answer at once. Other streams, TLS included, cannot
/// be probed: there a new receiver waits up to [`Config::abort_grace`] for the previous one
/// to turn out gone. Dropping the future closes the connection. The connection is not
/// counted and has no graceful shutdown of its own ([`SockJs::close_all`] ends its
/// sessions): hand connections to a [`Handler`] for both.
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
    connection(io, peer, Arc::new(Standalone::new(routes, config))).await
}

/// Routes started for connections the application accepts itself (from a Unix listener,
/// its own TLS acceptor, a listener it shares with other protocols...), handed over with
/// [`Handler::serve_connection`]: the same as sockjs-smol's `Handler`. Unlike the free
/// [`serve_connection`], its connections are counted (in `sockjs_connections_open`,
/// WebSockets included until their pumps end; not bounded: [`Config::max_connections`]
/// is an accept loop's) and shut down gracefully with [`Handler::shutdown`], as
/// [`serve`]'s are. Cheap to clone (clones share the server).
///
/// Dropping every clone stops nothing: the connections handed over run on until they end,
/// and the services close their sessions as a shutdown does once nothing holds them any
/// more (the last connection, and any clone of the `Routes` or [`SockJs`] the application
/// kept).
///
/// ```no_run
/// # async fn run(routes: sockjs_tokio::Routes) -> std::io::Result<()> {
/// let handler = sockjs_tokio::Handler::new(routes, sockjs_tokio::Config::default());
/// let listener = tokio::net::UnixListener::bind("/tmp/sockjs.sock")?;
/// let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
/// let accepting = handler.clone();
/// let accept = tokio::spawn(async move {
///     while let Ok((stream, _)) = listener.accept().await {
///         tokio::spawn(accepting.serve_connection(stream, peer));
///     }
/// });
/// tokio::signal::ctrl_c().await?;
/// accept.abort();
/// handler.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Handler {
    host: Arc<Standalone>,
    /// The host's count too (`Standalone::open`).
    open: Arc<OpenConnections>,
}

impl fmt::Debug for Handler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("routes", &self.host.routes)
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// Starts `routes` with the server settings of `config` (as [`Serve::config`]; with
    /// `Config::tls`, feature `tls`, every connection starts with a TLS handshake).
    pub fn new(routes: impl Into<Routes>, config: Config) -> Handler {
        let routes = routes.into();
        let open = OpenConnections::reporting_to(config.max_connections, routes.unrouted.clone());
        let (trigger, stop) = watch::channel(false);
        Handler {
            host: Arc::new(Standalone {
                stop: Some(stop),
                trigger: Some(trigger),
                open: Some(open.clone()),
                ..Standalone::new(routes, Arc::new(config))
            }),
            open,
        }
    }

    /// Serves one connection given as any byte stream, as the free [`serve_connection`]
    /// does (a `tokio::net::TcpStream` tuned, read directly and probed; other streams
    /// polled), counted from this call until it ends: its own future, `'static`, to spawn.
    /// Once [`shutdown`](Handler::shutdown) has begun, the connection is served as
    /// [`serve`]'s are during a shutdown: no new session (`503`), and an idle connection
    /// closes once no session is left (from then on, a new one before its first request).
    pub fn serve_connection<T>(
        &self,
        io: T,
        peer: SocketAddr,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.open
            .enter()
            .counting(connection(io, peer, self.host.clone()))
    }

    /// Shuts down gracefully, as [`Serve::with_graceful_shutdown`] does once its signal
    /// comes: closes every session with [`Config::shutdown_code`] and
    /// [`Config::shutdown_reason`], opens no new one (`503`), lets idle connections close
    /// once no session is left, and returns once every session, handler task and
    /// connection handed over is done, or after [`Config::shutdown_timeout`] (what is
    /// still open then is the application's to drop; a WebSocket's pump ends by itself
    /// once its close is written and its linger over). Calling it again (or from several
    /// tasks) runs the same steps again and returns as the first call does. The shutdown
    /// runs in a task of its own: dropping this future (under a timeout of the
    /// application's, say) does not stop it halfway, with idle connections left waiting
    /// for a drain that never ends.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub async fn shutdown(&self) {
        let shutdown = tokio::spawn(run_shutdown(self.host.clone(), self.open.clone()));
        // A panic in it would be tokio's to report; there is nothing to hand back.
        let _ = shutdown.await;
    }

    /// A snapshot of each mounted service's counters, as [`Routes::metrics`].
    pub fn metrics(&self) -> Vec<Metrics> {
        self.host.routes.metrics()
    }

    /// The answers to requests that reached no mounted service, as [`Routes::unrouted`],
    /// with the connections open ([`Unrouted::open_connections`]).
    pub fn unrouted(&self) -> &Unrouted {
        self.host.routes.unrouted()
    }
}

/// A [`Handler`]'s graceful shutdown.
async fn run_shutdown(host: Arc<Standalone>, open: Arc<OpenConnections>) {
    if let Some(trigger) = &host.trigger {
        trigger.send_replace(true);
    }
    host.drain(&open).await;
}

/// The server, as its connections see it.
#[derive(Debug)]
struct Standalone {
    routes: Routes,
    config: Arc<Config>,
    runtime: Tokio,
    /// Turns `true` when graceful shutdown starts; `None`: never.
    stop: Option<watch::Receiver<bool>>,
    /// A [`Handler`]'s: what starts its shutdown (`serve` keeps its own).
    trigger: Option<watch::Sender<bool>>,
    /// The server's WebSocket tasks, while it runs; `None` (a connection served on its
    /// own): WebSockets are tasks of their own, as the connection was.
    websockets: Option<Weak<WebSockets>>,
    /// The server's (or [`Handler`]'s) open connections, which its WebSockets join;
    /// `None` (a connection served on its own): not counted.
    open: Option<Arc<OpenConnections>>,
}

impl Standalone {
    fn new(routes: Routes, config: Arc<Config>) -> Self {
        // Only HTTP/1.1 over TLS (see `tls::http1_only`); the same config when it is so.
        #[cfg(feature = "tls")]
        let config = match config.tls.clone().map(sockjs_core::driver::tls::http1_only) {
            Some(tls)
                if !config
                    .tls
                    .as_ref()
                    .is_some_and(|own| Arc::ptr_eq(own, &tls)) =>
            {
                Arc::new(Config {
                    tls: Some(tls),
                    ..Config::clone(&config)
                })
            }
            _ => config,
        };
        Standalone {
            routes,
            config,
            runtime: Tokio::default(),
            stop: None,
            trigger: None,
            websockets: None,
            open: None,
        }
    }
}

impl Standalone {
    /// The graceful shutdown's drain over the routes' services
    /// ([`sockjs_core::driver::shutdown`], which logs what a timeout left), waiting for the
    /// connections of `open` too: WebSockets count as connections until their pumps end
    /// (the close written, the linger over), as sockjs-smol's do. `false` if it timed out.
    async fn drain(&self, open: &OpenConnections) -> bool {
        let services: Vec<Service> = self
            .routes
            .services()
            .map(|s| s.service().clone())
            .collect();
        let connections_left = || open.len();
        sockjs_core::driver::shutdown(&self.runtime, &services, &self.config, connections_left)
            .await
    }
}

impl Host for Standalone {
    fn runtime(&self) -> &dyn Runtime {
        &self.runtime
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn services(&self) -> impl Iterator<Item = &Service> {
        self.routes.services().map(SockJs::service)
    }

    fn route(&self, path: &str) -> Option<(&Service, usize)> {
        let (prefix, service) = self.routes.mounts.find(path)?;
        Some((service.service(), prefix.len()))
    }

    fn fallback(&self, request: http::Request<Bytes>) -> Option<http::Response<Bytes>> {
        self.routes
            .fallback
            .as_ref()
            .map(|fallback| fallback(request))
    }

    fn decorate(&self, headers: &mut http::HeaderMap) {
        self.routes.headers.decorate(headers);
    }

    fn unrouted(&self) -> &Unrouted {
        &self.routes.unrouted
    }

    fn is_shutting_down(&self) -> bool {
        self.stop.as_ref().is_some_and(|stop| *stop.borrow())
    }

    fn shutdown_started(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        match self.stop.clone() {
            Some(mut stop) => Box::pin(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            }),
            None => Box::pin(std::future::pending()),
        }
    }

    fn spawn_websocket<S: Socket>(self: &Arc<Self>, websocket: WebSocket<S>) {
        let Some(websockets) = &self.websockets else {
            // A connection served on its own, or a `Handler`'s: a task of its own, counted
            // with the handler's connections.
            match &self.open {
                Some(open) => tokio::spawn(open.enter().counting(websocket)),
                None => tokio::spawn(websocket),
            };
            return;
        };
        // The server is gone (its future dropped): so is the socket.
        let Some(websockets) = websockets.upgrade() else {
            return;
        };
        let mut set = lock(&websockets);
        // Finished tasks stay in the set until joined: let them go as new ones come.
        while set.try_join_next().is_some() {}
        match &self.open {
            Some(open) => set.spawn(open.enter().counting(websocket)),
            None => set.spawn(websocket),
        };
    }

    fn open_connections(&self) -> Option<&OpenConnections> {
        self.open.as_deref().filter(|open| open.is_bounded())
    }
}

/// Serves one connection: TLS first when the server has it, a plain TCP socket read and
/// written directly (and probed), any other stream polled.
async fn connection<T>(io: T, peer: SocketAddr, host: Arc<Standalone>) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Tuned here, once, before TLS wraps it: the socket is no longer in sight after.
    if let Some(tcp) = (&io as &dyn std::any::Any).downcast_ref::<TcpStream>() {
        host.config.tune_tcp(tcp);
    }
    let connection = Connection::new().with_peer(peer);
    #[cfg(feature = "tls")]
    if let Some(tls) = host.config.tls.clone() {
        // Boxed: a TLS connection's state (the handshake, then rustls's own buffers beside
        // the connection's) is large, and inline it would size every connection's task,
        // TLS or not.
        return Box::pin(async move {
            // The handshake, and then the first request head too, are due within the header
            // read timeout of now.
            let accepted = host.runtime().now();
            let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(io);
            let handshake = tokio::time::timeout(host.config.header_read_timeout, handshake);
            // Nor past the graceful shutdown: it carries no request yet, and ends when an
            // idle connection would.
            let mut io = tokio::select! {
                done = handshake => done.map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??,
                () = http1::idle_connections_end(&*host) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "shutting down during the TLS handshake",
                    ));
                }
            };
            sockjs_core::driver::tls::tune(io.get_mut().1);
            let connection = connection.with_tls(true).with_accepted_at(accepted);
            http1::serve(host, Polled::new(io.compat()), connection).await
        })
        .await;
    }
    let mut io = Some(io);
    let any: &mut dyn std::any::Any = &mut io;
    if let Some(stream) = any
        .downcast_mut::<Option<TcpStream>>()
        .and_then(Option::take)
    {
        let tcp = Tcp(Arc::new(stream));
        let connection = connection.with_probe(tcp.probe());
        return http1::serve(host, tcp, connection).await;
    }
    let Some(io) = io else { return Ok(()) };
    http1::serve(host, Polled::new(io.compat()), connection).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Routes, Standalone, connection};
    use crate::SockJs;

    /// A listener on a free loopback port, and its address.
    async fn loopback() -> (tokio::net::TcpListener, std::net::SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        (listener, addr)
    }

    /// A WebSocket's task is let go once it has finished, whether or not another WebSocket
    /// starts after it: with many closing at once and none opening, the server kept every
    /// finished task's memory.
    #[test]
    fn finished_websocket_tasks_are_let_go_at_once() {
        use std::sync::Mutex;
        use tokio::task::JoinSet;
        use tokio_tungstenite::tungstenite;

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let (listener, addr) = loopback().await;
            let routes = Routes::from(SockJs::new(Default::default(), |mut session| async move {
                while session.recv().await.is_some() {}
            }));
            let websockets = Arc::new(Mutex::new(JoinSet::new()));
            let server = tokio::spawn(super::serve(listener, routes).run_with(websockets.clone()));
            let clients = tokio::task::spawn_blocking(move || {
                for i in 0..5 {
                    let stream = std::net::TcpStream::connect(addr).expect("connect");
                    let url = format!("ws://{addr}/000/s{i}/websocket");
                    let (mut ws, _) = tungstenite::client(url.as_str(), stream).expect("upgrade");
                    let open = ws.read().expect("open frame");
                    assert_eq!(open.to_text().ok(), Some("o"));
                    ws.close(None).expect("close");
                    // Until the server's close answer and its end of the connection.
                    while ws.read().is_ok() {}
                }
            });
            clients.await.expect("clients");
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                let left = super::lock(&websockets).len();
                if left == 0 {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{left} finished WebSocket tasks still held"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            server.abort();
        });
    }

    /// A connection's task is held for the connection's whole life, by every idle streaming
    /// or polling client: its future stays small whatever the build's features (a TLS
    /// connection's state is boxed apart, only for TLS connections), and the server's task
    /// holds it once. It is the driver's HTTP/1 connection (sockjs-smol's too) and what
    /// picks the socket: 1,272 B, with no read or write buffer on the heap between
    /// requests (hyper's connection held 16 KiB of them).
    #[test]
    fn connection_future_stays_small() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let (listener, addr) = loopback().await;
            let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (stream, peer) = listener.accept().await.expect("accept");
            let routes = Routes::from(SockJs::new(Default::default(), |_| async {}));
            let config = Arc::new(crate::Config::default());
            let host = Arc::new(Standalone::new(routes, config));
            let served = connection(stream, peer, host);
            let size = size_of_val(&served);
            assert!(size <= 1344, "a connection's future: {size} B");
        });
    }
}
