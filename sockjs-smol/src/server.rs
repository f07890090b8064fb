//! The server: services, the accept loop, executor threads and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_executor::Executor;
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::future;
use http::header::{Entry, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response};
use sockjs_core::driver::{Config, Service, Session};
use sockjs_core::{Options, OptionsError};

use crate::conn;
use crate::runtime::Smol;
use crate::socket::Stream;

/// The application's handler, type-erased until the service is built.
type Handler = Arc<dyn Fn(Session) -> sockjs_core::driver::Task + Send + Sync>;

/// What answers requests outside every service (see [`Server::fallback`]).
type Fallback = Box<dyn Fn(Request<Bytes>) -> Response<Bytes> + Send + Sync>;

/// A service before the server starts.
struct Spec {
    options: Options,
    handler: Handler,
}

/// What connection tasks share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// Longest prefix first.
    services: Vec<Service>,
    /// The largest `max_request_body` of any service (the decoder's body bound).
    pub(crate) max_body: usize,
    shutting_down: AtomicBool,
    /// Closed (never sent on) when graceful shutdown starts.
    pub(crate) shutdown: async_channel::Receiver<()>,
    connections: AtomicUsize,
    executor: Weak<Executor<'static>>,
    /// Answers requests outside every service; `None`: 404.
    pub(crate) fallback: Option<Fallback>,
    /// Added to every response that lacks them.
    headers: HeaderMap,
}

impl Shared {
    /// The service that serves `path`, or `None` (404).
    pub(crate) fn route(&self, path: &str) -> Option<&Service> {
        self.services.iter().find(|service| service.matches(path))
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Adds the server's headers ([`Server::header`]) to a response that lacks them.
    pub(crate) fn decorate(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            if let Entry::Vacant(entry) = headers.entry(name) {
                entry.insert(value.clone());
            }
        }
    }

    /// Runs a connection's task, counted until it ends (graceful shutdown waits for it).
    pub(crate) fn spawn_counted(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        let Some(executor) = self.executor.upgrade() else {
            return;
        };
        self.connections.fetch_add(1, Ordering::AcqRel);
        let counted = Counted(self.clone());
        executor
            .spawn(async move {
                task.await;
                drop(counted);
            })
            .detach();
    }
}

/// One connection in [`Shared::connections`] until dropped.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Triggers graceful shutdown of a running [`Server`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    trigger: Arc<Mutex<Option<async_channel::Sender<()>>>>,
    signal: async_channel::Receiver<()>,
    /// The running server's services (empty before `serve` starts).
    services: Arc<Mutex<Vec<Service>>>,
}

impl ServerHandle {
    fn new() -> Self {
        let (tx, rx) = async_channel::bounded(1);
        ServerHandle {
            trigger: Arc::new(Mutex::new(Some(tx))),
            signal: rx,
            services: Arc::default(),
        }
    }

    /// Starts graceful shutdown: the server stops accepting, closes every open session with
    /// [`Config::shutdown_code`] and [`Config::shutdown_reason`], and [`Server::serve`]
    /// returns once sessions, handlers and connections are done or
    /// [`Config::shutdown_timeout`] passed. Calling it again does nothing.
    pub fn shutdown(&self) {
        self.trigger
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        self.signal.is_closed()
    }

    /// Live sessions (open or closing) over every service of the running server, from the
    /// request that creates a session until the engine forgets it. Zero before
    /// [`Server::serve`] starts and after it returns.
    pub fn session_count(&self) -> usize {
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services.iter().map(Service::session_count).sum()
    }

    /// Requests the running server's services hold (pending receivers, open streams and
    /// WebSockets): zero once every client is gone.
    pub fn open_requests(&self) -> usize {
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services.iter().map(Service::open_requests).sum()
    }
}

/// A SockJS server hosting one or more services on one listener.
///
/// ```no_run
/// use async_io::Async;
/// use sockjs_smol::{Options, Server};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::new().service("/echo", Options::default(), |mut session| async move {
///     while let Some(message) = session.recv().await {
///         let _ = session.send(message).await;
///     }
/// })?;
/// let listener = Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 8081))?;
/// async_io::block_on(server.serve(listener))?;
/// # Ok(())
/// # }
/// ```
pub struct Server {
    config: Config,
    threads: usize,
    specs: Vec<Spec>,
    fallback: Option<Fallback>,
    headers: HeaderMap,
    handle: ServerHandle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field(
                "services",
                &self
                    .specs
                    .iter()
                    .map(|s| &s.options.prefix)
                    .collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.is_some())
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    /// A server with the default [`Config`] and no services (every request gets 404, or
    /// the [`fallback`](Server::fallback)'s answer).
    pub fn new() -> Self {
        Server::with_config(Config::default())
    }

    /// A server with these settings.
    pub fn with_config(config: Config) -> Self {
        Server {
            config,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            specs: Vec::new(),
            fallback: None,
            headers: HeaderMap::new(),
            handle: ServerHandle::new(),
        }
    }

    /// Executor threads, the thread that polls [`Server::serve`] included. Default: the
    /// available parallelism.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Adds a service at `prefix` (e.g. `/echo`; empty for the root); `options.prefix` is
    /// replaced by it. `handler` runs once per session, in its own task, when the session
    /// opens.
    ///
    /// Fails if the options are invalid, or with [`OptionsError::Prefix`] if the prefix is
    /// malformed or already used.
    pub fn service<H, F>(
        mut self,
        prefix: &str,
        mut options: Options,
        handler: H,
    ) -> Result<Self, OptionsError>
    where
        H: Fn(Session) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        prefix.clone_into(&mut options.prefix);
        options.validate()?;
        if self.specs.iter().any(|s| s.options.prefix == prefix) {
            return Err(OptionsError::Prefix);
        }
        self.specs.push(Spec {
            options,
            handler: Arc::new(move |session| Box::pin(handler(session))),
        });
        Ok(self)
    }

    /// Answers every request outside the services' prefixes with `handler` instead of
    /// `404`: the one ordinary route a SockJS server usually needs, such as the page that
    /// loads the client, without another HTTP server in front.
    ///
    /// `handler` gets the whole request (the body read, bounded by the largest
    /// [`Options::max_request_body`] of the services, and the client's
    /// [`PeerAddr`](sockjs_core::PeerAddr) as an extension) and returns the whole response.
    /// It runs on the connection's task, so it must not block; answering `HEAD` without a
    /// body, `Content-Length`, keep-alive and the [`header`](Server::header)s are the
    /// server's. During graceful shutdown every request gets `503` instead.
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use http::{Response, StatusCode, header};
    /// use sockjs_smol::{Options, Server};
    ///
    /// # fn main() -> Result<(), sockjs_smol::OptionsError> {
    /// let server = Server::new()
    ///     .service("/echo", Options::default(), |mut session| async move {
    ///         while let Some(text) = session.recv().await {
    ///             let _ = session.send(text).await;
    ///         }
    ///     })?
    ///     .fallback(|request| {
    ///         let mut response = Response::new(Bytes::new());
    ///         if request.uri().path() == "/" {
    ///             *response.body_mut() = Bytes::from_static(b"<!doctype html><p>Hello</p>");
    ///             response.headers_mut().insert(header::CONTENT_TYPE, "text/html".parse().unwrap());
    ///         } else {
    ///             *response.status_mut() = StatusCode::NOT_FOUND;
    ///         }
    ///         response
    ///     });
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    pub fn fallback<F>(mut self, handler: F) -> Self
    where
        F: Fn(Request<Bytes>) -> Response<Bytes> + Send + Sync + 'static,
    {
        self.fallback = Some(Box::new(handler));
        self
    }

    /// Adds a header to every response the server writes (the services', the
    /// [`fallback`](Server::fallback)'s, its 404s and 503s, and WebSocket handshakes) that
    /// does not have that header already: e.g. the name of the node behind a load
    /// balancer. Not to the error answers to requests that could not be read (400, 408,
    /// 413, 431). Setting a name again replaces its value.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// A handle to shut the server down gracefully once it runs.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves connections from `listener` until [`ServerHandle::shutdown`] is called and
    /// the graceful shutdown ends (or fails at once if a service cannot start).
    ///
    /// The server runs on its own executor: this future drives it on the calling thread and
    /// [`Server::threads`]` - 1` more threads join while it runs. Poll it with any
    /// `block_on` (`async_io::block_on`, `smol::block_on`). Handler tasks still running
    /// when it returns are dropped.
    pub async fn serve(self, listener: Async<TcpListener>) -> io::Result<()> {
        let executor = Arc::new(Executor::new());
        let runtime = Arc::new(Smol::Server(Arc::downgrade(&executor)));
        let mut services = Vec::with_capacity(self.specs.len());
        let mut max_body = 1;
        for spec in self.specs {
            max_body = max_body.max(spec.options.max_request_body);
            let handler = spec.handler;
            let service = Service::new(
                spec.options,
                self.config.clone(),
                runtime.clone(),
                move |session| handler(session),
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            tracing::info!(service = %service.prefix(), shards = service.shard_count(), "service ready");
            services.push(service);
        }
        services.sort_by_key(|s| std::cmp::Reverse(s.prefix().len()));
        self.handle
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone_from(&services);
        let (shutdown_tx, shutdown_rx) = async_channel::bounded::<()>(1);
        let shared = Arc::new(Shared {
            config: self.config,
            services,
            max_body,
            shutting_down: AtomicBool::new(false),
            shutdown: shutdown_rx,
            connections: AtomicUsize::new(0),
            executor: Arc::downgrade(&executor),
            fallback: self.fallback,
            headers: self.headers,
        });

        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        for i in 1..self.threads {
            let executor = executor.clone();
            let stop = stop_rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sockjs-smol-{i}"))
                .spawn(move || {
                    async_io::block_on(executor.run(async {
                        let _ = stop.recv().await;
                    }))
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a worker thread");
            }
        }

        let handle = self.handle;
        let main = async {
            if let Ok(addr) = listener.get_ref().local_addr() {
                tracing::info!(%addr, "listening");
            }
            accept(&listener, &shared, &handle).await;
            drop(listener);
            shared.shutting_down.store(true, Ordering::Release);
            drop(shutdown_tx);
            drain(&shared).await;
        };
        executor.run(main).await;
        // Worker threads end as soon as they see the stop signal; they are not joined so
        // that this future never blocks its thread.
        drop(stop_tx);
        handle
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }
}

async fn accept(listener: &Async<TcpListener>, shared: &Arc<Shared>, handle: &ServerHandle) {
    enum Event {
        Accepted(io::Result<(Async<std::net::TcpStream>, std::net::SocketAddr)>),
        Shutdown,
    }
    loop {
        let accepted = async { Event::Accepted(listener.accept().await) };
        let shutdown = async {
            let _ = handle.signal.recv().await;
            Event::Shutdown
        };
        match future::or(shutdown, accepted).await {
            Event::Accepted(Ok((stream, peer))) => {
                let _ = stream.get_ref().set_nodelay(true);
                let stream = Stream(Arc::new(stream));
                shared.spawn_counted(conn::serve(shared.clone(), stream, peer));
            }
            Event::Accepted(Err(e)) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                Timer::after(Duration::from_millis(50)).await;
            }
            Event::Shutdown => return,
        }
    }
}

/// Graceful shutdown: close every session, then wait for sessions, handlers and
/// connections to end, at most the shutdown timeout.
async fn drain(shared: &Shared) {
    let config = &shared.config;
    for service in &shared.services {
        service.close_all(config.shutdown_code, &config.shutdown_reason);
    }
    let deadline = Instant::now() + config.shutdown_timeout;
    loop {
        let sessions: usize = shared.services.iter().map(Service::session_count).sum();
        let handlers: usize = shared.services.iter().map(Service::running_handlers).sum();
        let connections = shared.connections.load(Ordering::Acquire);
        if sessions + handlers + connections == 0 {
            tracing::info!("graceful shutdown complete");
            return;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                sessions,
                handlers,
                connections,
                "graceful shutdown timed out"
            );
            return;
        }
        Timer::after(Duration::from_millis(10)).await;
    }
}

/// Serves one SockJS service at `options.prefix` with the default [`Config`] until the
/// process ends. For several services, settings or shutdown, use [`Server`].
pub async fn serve<H, F>(
    listener: Async<TcpListener>,
    options: Options,
    handler: H,
) -> io::Result<()>
where
    H: Fn(Session) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let prefix = options.prefix.clone();
    let server = Server::new()
        .service(&prefix, options, handler)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    server.serve(listener).await
}
