//! The server: services, the accept loop, one connection's entry point, executor threads
//! and graceful shutdown.

use std::any::Any;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use async_executor::Executor;
use async_io::{Async, Timer};
use bytes::Bytes;
use futures_lite::future;
use futures_lite::io::{AsyncRead, AsyncWrite};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request, Response};
use sockjs_core::driver::http1::{self, Host};
use sockjs_core::driver::metrics::{Metrics, Unrouted};
use sockjs_core::driver::web::{Fallback, ServerHeaders};
use sockjs_core::driver::{
    ACCEPT_BACKOFF, AcceptError, Admission, Config, Connection, OpenConnections, Polled, Runtime,
    Service, Session, Socket, WebSocket,
};
use sockjs_core::{Options, OptionsError};

use crate::runtime::Smol;
use crate::socket::Stream;

/// The application's session handler, type-erased until the service is built.
type SessionHandler = Arc<dyn Fn(Session) -> sockjs_core::driver::Task + Send + Sync>;

/// A service before the server starts.
struct Spec {
    options: Options,
    handler: SessionHandler,
    admission: Option<Admission>,
}

/// What connection tasks share.
pub(crate) struct Shared {
    config: Config,
    /// Spawns on the server's executor; timers. The services' own.
    runtime: Arc<Smol>,
    /// Longest prefix first.
    services: Vec<Service>,
    handle: ServerHandle,
    /// Open connections (WebSockets included), under `config.max_connections`.
    open: Arc<OpenConnections>,
    executor: Weak<Executor<'static>>,
    /// Answers requests outside every service; `None`: 404.
    fallback: Option<Fallback>,
    /// Added to every response that lacks them.
    headers: ServerHeaders,
}

/// The driver's HTTP/1 connections ask the server these.
impl Host for Shared {
    fn runtime(&self) -> &dyn Runtime {
        &*self.runtime
    }

    fn config(&self) -> &Config {
        &self.config
    }

    fn services(&self) -> impl Iterator<Item = &Service> {
        self.services.iter()
    }

    fn route(&self, path: &str) -> Option<(&Service, usize)> {
        let service = self.services.iter().find(|service| service.matches(path))?;
        Some((service, 0))
    }

    fn fallback(&self, request: Request<Bytes>) -> Option<Response<Bytes>> {
        self.fallback.as_ref().map(|fallback| fallback(request))
    }

    /// Adds the server's headers ([`Server::header`]) to a response that lacks them.
    fn decorate(&self, headers: &mut HeaderMap) {
        self.headers.decorate(headers);
    }

    fn unrouted(&self) -> &Unrouted {
        &self.handle.unrouted
    }

    fn is_shutting_down(&self) -> bool {
        self.handle.signal.is_closed()
    }

    fn shutdown_started(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        // Closed, never sent on: the end of the channel is the signal.
        let signal = self.handle.signal.clone();
        Box::pin(async move { while signal.recv().await.is_ok() {} })
    }

    fn spawn_websocket<S: Socket>(self: &Arc<Self>, websocket: WebSocket<S>) {
        self.spawn_counted(websocket);
    }

    fn open_connections(&self) -> Option<&OpenConnections> {
        Some(&*self.open).filter(|open| open.is_bounded())
    }
}

/// The server is gone (its last `Handler` and connection): the handle lets go of its
/// services too, so that they drop, close their sessions and end their timers (and the
/// server's own threads with them), whether or not a `ServerHandle` is kept, or captured
/// by a session handler.
impl Drop for Shared {
    fn drop(&mut self) {
        self.handle
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Shared {
    /// The graceful shutdown: the services drain and close their sessions; returns once
    /// sessions, handlers and connections are done, or after the shutdown timeout. Each
    /// caller runs it (a started server's watcher and `Handler::shutdown` may both): its
    /// steps can be taken twice (the drain starts once, a closing session is not closed
    /// again, the drain ends once), and no caller depends on another's being polled.
    async fn run_shutdown(&self) {
        let connections = || self.open.len();
        sockjs_core::driver::shutdown(&*self.runtime, &self.services, &self.config, connections)
            .await;
    }

    /// Runs a connection's task on the server's executor, counted until it ends.
    fn spawn_counted(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        self.spawn(self.open.enter().counting(task));
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        if let Some(executor) = self.executor.upgrade() {
            executor.spawn(task).detach();
        }
    }
}

/// Triggers graceful shutdown of a running [`Server`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    trigger: Arc<Mutex<Option<async_channel::Sender<()>>>>,
    /// Closed (never sent on) when graceful shutdown starts.
    signal: async_channel::Receiver<()>,
    /// The running server's services (empty before `serve` starts).
    services: Arc<Mutex<Vec<Service>>>,
    /// Answers to requests that reached no service.
    unrouted: Arc<Unrouted>,
}

impl ServerHandle {
    fn new() -> Self {
        let (tx, rx) = async_channel::bounded(1);
        ServerHandle {
            trigger: Arc::new(Mutex::new(Some(tx))),
            signal: rx,
            services: Arc::default(),
            unrouted: Arc::default(),
        }
    }

    /// Starts graceful shutdown: the server stops accepting, closes every open session with
    /// [`Config::shutdown_code`] and [`Config::shutdown_reason`], and [`Server::serve`]
    /// returns once sessions, handlers and connections are done or
    /// [`Config::shutdown_timeout`] passed. A started server ([`Server::start`]) shuts
    /// down the same way, connections handed to it included;
    /// [`Handler::shutdown`] waits for it. Calling it again does nothing.
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

    /// A snapshot of each service's counters (see [`metrics`](crate::metrics)), longest
    /// prefix first; empty before [`Server::serve`] starts. Render them with
    /// [`metrics::write_prometheus`](crate::metrics::write_prometheus).
    pub fn metrics(&self) -> Vec<Metrics> {
        let services = self.services.lock().unwrap_or_else(PoisonError::into_inner);
        services.iter().map(Service::metrics).collect()
    }

    /// The answers the server wrote to requests that reached no service (a head too large,
    /// a path outside every prefix without a [`fallback`](Server::fallback), ...), by
    /// status; rendered beside [`metrics`](Self::metrics) with
    /// [`Unrouted::write_prometheus`].
    pub fn unrouted(&self) -> &Unrouted {
        &self.unrouted
    }
}

/// A SockJS server hosting one or more services on one listener ([`Server::serve`]), or
/// on the connections an application hands it ([`Server::start`]); see the
/// [crate documentation](crate) for an example.
pub struct Server {
    config: Config,
    threads: usize,
    executor: Option<Arc<Executor<'static>>>,
    specs: Vec<Spec>,
    fallback: Option<Fallback>,
    headers: ServerHeaders,
    handle: ServerHandle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefixes: Vec<_> = self.specs.iter().map(|s| &s.options.prefix).collect();
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("services", &prefixes)
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
            executor: None,
            specs: Vec::new(),
            fallback: None,
            headers: ServerHeaders::default(),
            handle: ServerHandle::new(),
        }
    }

    /// Executor threads, the thread that polls [`Server::serve`] included. Default: the
    /// available parallelism. Not used with [`Server::executor`].
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Runs the server on the caller's executor instead of one of its own: connection,
    /// session, timer and WebSocket tasks are spawned there, no thread is started, and the
    /// caller drives the executor (e.g. `executor.run(server.serve(listener))` on one
    /// thread and `executor.run(future::pending())` on each of the others, or
    /// [`Server::start`] beside its own tasks).
    pub fn executor(mut self, executor: Arc<Executor<'static>>) -> Self {
        self.executor = Some(executor);
        self
    }

    /// Adds a service at `prefix` (e.g. `/echo`; `""` or `"/"` for the root; a missing
    /// leading `/` is added and trailing ones are dropped, as sockjs-tokio's `Routes::mount`
    /// reads a prefix); `options.prefix` is replaced by it. `handler` runs once per
    /// session, in its own task, when the session opens.
    ///
    /// Fails if the options are invalid, or with [`OptionsError::Prefix`] if the prefix is
    /// already used (`/echo`, `echo` and `/echo/` are one prefix).
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
        options.prefix = sockjs_core::driver::web::mount_prefix(prefix);
        options.validate()?;
        if self
            .specs
            .iter()
            .any(|s| s.options.prefix == options.prefix)
        {
            return Err(OptionsError::Prefix);
        }
        self.specs.push(Spec {
            options,
            handler: Arc::new(move |session| Box::pin(handler(session))),
            admission: None,
        });
        Ok(self)
    }

    /// Gives the service added last an admission hook: every request that would open a
    /// session of it waits for the hook's verdict, and the session opens only if it admits
    /// the request (see [`Admission`]). The same as sockjs-tokio's `Builder::admission`.
    ///
    /// # Panics
    ///
    /// If no service was added yet: a hook meant to guard a service must not be lost.
    ///
    /// ```no_run
    /// use sockjs_smol::{Admission, Options, Rejection, Server};
    ///
    /// struct User(String);
    ///
    /// # fn main() -> Result<(), sockjs_smol::OptionsError> {
    /// let server = Server::new()
    ///     .service("/chat", Options::default(), |session| async move {
    ///         let Some(User(name)) = session.admitted::<User>() else { return };
    ///         let _ = session.send(format!("welcome, {name}")).await;
    ///     })?
    ///     .admission(Admission::new(|request| async move {
    ///         match request.cookie("sid") {
    ///             Some(sid) => Ok(User(sid.to_owned())), // look it up in a real store
    ///             None => Err(Rejection::unauthorized()),
    ///         }
    ///     }));
    /// # drop(server);
    /// # Ok(())
    /// # }
    /// ```
    pub fn admission(mut self, admission: Admission) -> Self {
        match self.specs.last_mut() {
            Some(spec) => spec.admission = Some(admission),
            None => panic!("Server::admission called before any Server::service"),
        }
        self
    }

    /// Answers every request outside the services' prefixes with `handler` instead of
    /// `404`: the one ordinary route a SockJS server usually needs, such as the page that
    /// loads the client, without another HTTP server in front.
    ///
    /// `handler` gets the whole request (the body read, bounded by the largest
    /// [`Options::max_request_body`] of the services, its default of 256 KiB while none is
    /// added, and the client's
    /// [`PeerAddr`](sockjs_core::PeerAddr) as an extension) and returns the whole response.
    /// It runs on the connection's task, so it must not block; answering `HEAD` without a
    /// body, `Content-Length`, keep-alive and the [`header`](Server::header)s are the
    /// server's. During graceful shutdown every request for it gets `503` instead.
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
        self.fallback = Some(Arc::new(handler));
        self
    }

    /// Adds a header to every response the server writes (the services', the
    /// [`fallback`](Server::fallback)'s, its 404s and 503s, and WebSocket handshakes) that
    /// does not have that header already: e.g. the name of the node behind a load
    /// balancer. Not to the error answers to requests that could not be read (400, 408,
    /// 413, 431). Setting a name again replaces its value.
    ///
    /// # Panics
    ///
    /// On a field that frames the message or the connection (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`, `Upgrade`, `Keep-Alive`, `TE`, `Trailer`): the
    /// server writes those itself, and one added to every response would break them (a
    /// length on a `204` or on the `101` of a WebSocket).
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

    /// Starts the services for connections the application accepts itself, handed over
    /// with [`Handler::serve_connection`]: on the [`executor`](Server::executor) given, or
    /// on the server's own, whose [`threads`](Server::threads) start now and end once the
    /// last [`Handler`] clone, connection and session is gone. Dropped without
    /// [`Handler::shutdown`], the server closes its sessions as a shutdown does
    /// ([`Config::shutdown_code`]; HTTP sessions after their disconnect delay).
    ///
    /// Fails if a service cannot start (invalid options).
    pub fn start(mut self) -> io::Result<Handler> {
        let Some(executor) = self.executor.take() else {
            let executor = Arc::new(Executor::new());
            let workers = workers(&executor, 0..self.threads);
            return self.build(&executor, Some(workers), Started::Yes);
        };
        self.build(&executor, None, Started::Yes)
    }

    /// Serves connections from `listener` until [`ServerHandle::shutdown`] is called and
    /// the graceful shutdown ends (or fails at once if a service cannot start). A listener
    /// that fails for good (closed, shut down, not listening:
    /// [`AcceptError::Listener`](sockjs_core::driver::AcceptError::Listener)) ends it the
    /// same way, and it returns that error; a connection that fails before it is accepted
    /// is skipped, and a want of file descriptors or memory, or a refusal by the system's
    /// policy, waited out ([`ACCEPT_BACKOFF`](sockjs_core::driver::ACCEPT_BACKOFF)).
    ///
    /// By default the server runs on its own executor: this future drives it on the
    /// calling thread and [`Server::threads`]` - 1` more threads join while it runs. Poll
    /// it with any `block_on` (`async_io::block_on`, `smol::block_on`). With
    /// [`Server::executor`] it runs on the caller's executor instead, which the caller
    /// drives. What is still running when it returns (after
    /// [`Config::shutdown_timeout`]: connections, WebSockets, handler tasks) is dropped
    /// with the server's own executor; on the caller's, it stays there, as sockjs-tokio's
    /// handler tasks stay on their runtime.
    pub async fn serve(mut self, listener: Async<TcpListener>) -> io::Result<()> {
        let (executor, stop) = match self.executor.take() {
            Some(executor) => (executor, None),
            None => {
                let executor = Arc::new(Executor::new());
                let stop = workers(&executor, 1..self.threads);
                (executor, Some(stop))
            }
        };
        let handler = self.build(&executor, None, Started::No)?;
        // The accept loop is a task of its own, polled when the listener wakes it. Polled
        // as part of this future it would run on every wake-up of the thread driving it
        // (each new task, each I/O event it handles for others), and every poll of
        // async-io's `accept` tries `accept4` again and re-arms the listener: two wasted
        // system calls each time.
        let accepting = executor.spawn(async move { handler.serve(listener).await });
        let result = match stop {
            Some(_) => executor.run(accepting).await,
            None => accepting.await,
        };
        // Worker threads end as soon as they see the stop signal; they are not joined so
        // that this future never blocks its thread.
        drop(stop);
        result
    }

    /// Builds the services on `executor`.
    fn build(
        self,
        executor: &Arc<Executor<'static>>,
        workers: Option<async_channel::Sender<()>>,
        started: Started,
    ) -> io::Result<Handler> {
        let runtime = Arc::new(Smol::Server {
            executor: Arc::downgrade(executor),
            _workers: workers,
        });
        let mut services = Vec::with_capacity(self.specs.len());
        for spec in self.specs {
            let handler = spec.handler;
            let service = Service::new(
                spec.options,
                self.config.clone(),
                runtime.clone(),
                move |session| handler(session),
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            if let Some(admission) = spec.admission {
                // A fresh service has no hook yet: this cannot fail.
                let _ = service.set_admission(admission);
            }
            tracing::info!(service = %service.prefix(), shards = service.shard_count(), "service ready");
            services.push(service);
        }
        services.sort_by_key(|s| std::cmp::Reverse(s.prefix().len()));
        self.handle
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone_from(&services);
        let config = self.config;
        #[cfg(feature = "tls")]
        let config = Config {
            tls: config.tls.map(sockjs_core::driver::tls::http1_only),
            ..config
        };
        let open =
            OpenConnections::reporting_to(config.max_connections, self.handle.unrouted.clone());
        let shared = Arc::new(Shared {
            config,
            runtime,
            services,
            handle: self.handle,
            open,
            executor: Arc::downgrade(executor),
            fallback: self.fallback,
            headers: self.headers,
        });
        if let Started::Yes = started {
            // A started server has no accept loop to run its shutdown: this task waits for
            // `ServerHandle::shutdown` and runs it, so that the handle alone shuts the
            // server down (its sessions closed, idle connections let go). It holds the
            // server weakly: a server dropped without a shutdown ends as documented (the
            // task then ends once every `ServerHandle` is gone too, or with the server's
            // own executor).
            let server = Arc::downgrade(&shared);
            let signal = shared.handle.signal.clone();
            executor
                .spawn(async move {
                    while signal.recv().await.is_ok() {}
                    if let Some(shared) = server.upgrade() {
                        shared.run_shutdown().await;
                    }
                })
                .detach();
        }
        Ok(Handler { shared })
    }
}

/// Whether a server is built by [`Server::start`] (its shutdown run by a task of its own
/// when the signal comes) or by [`Server::serve`] (by its accept loop).
#[derive(Clone, Copy)]
enum Started {
    Yes,
    No,
}

/// A started [`Server`] ([`Server::start`]): its services running, ready to serve the
/// connections an application accepts itself. Cheap to clone.
#[derive(Clone)]
pub struct Handler {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("services", &self.shared.services)
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// A snapshot of each service's counters (see [`metrics`](crate::metrics)), longest
    /// prefix first, as [`ServerHandle::metrics`] takes them.
    pub fn metrics(&self) -> Vec<Metrics> {
        self.shared.services.iter().map(Service::metrics).collect()
    }

    /// The answers to requests that reached no service, as [`ServerHandle::unrouted`].
    pub fn unrouted(&self) -> &Unrouted {
        &self.shared.handle.unrouted
    }

    /// Serves one connection given as any futures-io byte stream (an
    /// `Async<TcpStream>`, a TLS stream of one's own, a Unix socket...) until the client
    /// closes it, it fails, or it becomes a WebSocket, which goes on in a task of its own
    /// on the server's executor. `peer` is the client's address for the sessions
    /// ([`PeerAddr`](sockjs_core::PeerAddr)). With `Config::tls` (feature `tls`) the connection starts
    /// with a TLS handshake. Requests outside the services get the
    /// [`fallback`](Server::fallback)'s answer or 404.
    ///
    /// An `Async<TcpStream>` gets the server's TCP settings ([`Config::tune_tcp`]), is read
    /// and written directly and gets the liveness probe
    /// ([`ConnectionProbe`](sockjs_core::driver::ConnectionProbe)): a receiver that replaces
    /// one whose client has gone gets its answer at once. Other streams, TLS included,
    /// cannot be probed: there a new receiver waits up to [`Config::abort_grace`] for the
    /// previous one to turn out gone.
    ///
    /// The future owns what it needs (`'static`), so it can be spawned as it is, as
    /// sockjs-tokio's `Handler::serve_connection`'s can:
    ///
    /// ```
    /// # use std::net::{SocketAddr, TcpStream};
    /// # use async_io::Async;
    /// fn hand_over(
    ///     handler: &sockjs_smol::Handler,
    ///     executor: &async_executor::Executor<'static>,
    ///     stream: Async<TcpStream>,
    ///     peer: SocketAddr,
    /// ) {
    ///     executor.spawn(handler.serve_connection(stream, peer)).detach();
    /// }
    /// ```
    pub fn serve_connection<S>(
        &self,
        stream: S,
        peer: SocketAddr,
    ) -> impl Future<Output = io::Result<()>> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Counted from the call, as one future that owns its handle (to spawn as it is):
        // an `async` wrapper would add a state of its own to every connection's task.
        self.shared
            .open
            .enter()
            .counting(self.clone().serve_stream(stream, peer))
    }

    /// [`serve_connection`](Handler::serve_connection), for a connection counted already.
    async fn serve_stream<S>(self, stream: S, peer: SocketAddr) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = &self.shared;
        // Tuned here, once, before TLS wraps it: the socket is no longer in sight after.
        if let Some(tcp) = (&stream as &dyn Any).downcast_ref::<Async<TcpStream>>() {
            shared.config.tune_tcp(tcp.get_ref());
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = shared.config.tls.clone() {
            // Boxed: a TLS connection's state (the handshake, then rustls's own buffers
            // beside the connection's) is more than twice a plain one's, and inline it
            // would size every connection's task, TLS or not.
            return Box::pin(async move {
                // The handshake, and then the first request head too, are due within the
                // header read timeout of now.
                let accepted = shared.runtime.now();
                let handshake = futures_rustls::TlsAcceptor::from(tls).accept(stream);
                let timeout = async {
                    Timer::after(shared.config.header_read_timeout).await;
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    ))
                };
                // Nor past the graceful shutdown: it carries no request yet, and ends
                // when an idle connection would.
                let shutdown = async {
                    http1::idle_connections_end(&**shared).await;
                    Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "shutting down during the TLS handshake",
                    ))
                };
                let handshake = future::or(handshake, future::or(timeout, shutdown));
                let mut stream = handshake.await?;
                sockjs_core::driver::tls::tune(stream.get_mut().1);
                let stream = Polled::new(stream);
                let connection = Connection::new()
                    .with_peer(peer)
                    .with_tls(true)
                    .with_accepted_at(accepted);
                http1::serve(shared.clone(), stream, connection).await
            })
            .await;
        }
        // A plain TCP socket is read and written directly, and probed.
        let mut stream = Some(stream);
        let any: &mut dyn Any = &mut stream;
        if let Some(tcp) = any
            .downcast_mut::<Option<Async<TcpStream>>>()
            .and_then(Option::take)
        {
            let tcp = Stream(Arc::new(tcp));
            let connection = Connection::new().with_peer(peer).with_probe(tcp.probe());
            return http1::serve(shared.clone(), tcp, connection).await;
        }
        let Some(stream) = stream else { return Ok(()) };
        let connection = Connection::new().with_peer(peer);
        http1::serve(shared.clone(), Polled::new(stream), connection).await
    }

    /// Starts the graceful shutdown ([`ServerHandle::shutdown`]) and waits for it to end:
    /// for an application that accepts connections itself. [`Server::serve`] does it on
    /// its own.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.handle.shutdown();
        // Run here, whether or not a started server's own task (woken by the signal just
        // given) runs it too: this call returns when its own run does.
        shared.run_shutdown().await;
    }

    /// Accepts connections until shutdown, then drains.
    async fn serve(&self, listener: Async<TcpListener>) -> io::Result<()> {
        if let Ok(addr) = listener.get_ref().local_addr() {
            tracing::info!(%addr, "listening");
        }
        // A listener that failed for good ends the server as a shutdown does.
        let broken = accept(&listener, self).await;
        drop(listener);
        self.shutdown().await;
        self.shared
            .handle
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        broken.map_or(Ok(()), Err)
    }
}

/// Threads numbered `range` running `executor` until the returned sender is dropped.
fn workers(
    executor: &Arc<Executor<'static>>,
    range: std::ops::Range<usize>,
) -> async_channel::Sender<()> {
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    for i in range {
        let (executor, stop) = (executor.clone(), stop_rx.clone());
        let run = move || async_io::block_on(executor.run(stop.recv()));
        let spawned = std::thread::Builder::new().name(format!("sockjs-smol-{i}"));
        if let Err(e) = spawned.spawn(run) {
            tracing::warn!(error = %e, "could not start a worker thread");
        }
    }
    stop_tx
}

/// Accepts connections until shutdown (`None`) or until the listener fails for good (its
/// error).
async fn accept(listener: &Async<TcpListener>, handler: &Handler) -> Option<io::Error> {
    enum Event {
        Accepted(io::Result<(Async<std::net::TcpStream>, std::net::SocketAddr)>),
        Shutdown,
    }
    loop {
        // At `max_connections`, the connection accepted waits (not yet counted) until an
        // idle keep-alive connection closed for it or another ended; the next ones wait in
        // the listen backlog meanwhile.
        let accepted = async {
            let accepted = listener.accept().await;
            if accepted.is_ok() {
                handler.shared.open.room_for_accepted().await;
            }
            Event::Accepted(accepted)
        };
        let shutdown = async {
            let _ = handler.shared.handle.signal.recv().await;
            Event::Shutdown
        };
        match future::or(shutdown, accepted).await {
            Event::Accepted(Ok((stream, peer))) => {
                // Counted from the accept, so that the bound holds for connections whose
                // tasks have not run yet.
                let open = handler.shared.open.enter();
                let served = handler.clone();
                handler.shared.spawn(open.counting(async move {
                    if let Err(e) = served.serve_stream(stream, peer).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }));
            }
            Event::Accepted(Err(e)) => match AcceptError::of(&e) {
                AcceptError::Connection => {
                    tracing::debug!(error = %e, "a connection failed before it was accepted");
                }
                AcceptError::Listener => {
                    tracing::error!(error = %e, "the listener failed: shutting down");
                    return Some(e);
                }
                // E.g. out of file descriptors: back off instead of spinning.
                _ => {
                    tracing::warn!(error = %e, "accept failed");
                    Timer::after(ACCEPT_BACKOFF).await;
                }
            },
            Event::Shutdown => return None,
        }
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
    // `options.prefix` as `Options` has it (empty or `/…`, no trailing `/`), checked
    // before `Server::service` reads it as a mount prefix, which it would normalise.
    let invalid = |e| io::Error::new(io::ErrorKind::InvalidInput, e);
    options.validate().map_err(invalid)?;
    let prefix = options.prefix.clone();
    let server = Server::new()
        .service(&prefix, options, handler)
        .map_err(invalid)?;
    server.serve(listener).await
}

#[cfg(test)]
mod tests {
    use crate::socket::Stream;
    use sockjs_core::driver::{CountedTask, WebSocket};

    /// An idle WebSocket session holds its pump's task for its whole life: the count beside
    /// it adds a pointer, not a second copy of the pump.
    #[test]
    fn websocket_task_holds_its_pump_once() {
        let pump = size_of::<WebSocket<Stream>>();
        let task = size_of::<CountedTask<WebSocket<Stream>>>();
        assert!(task <= pump + 16, "task {task} B, pump {pump} B");
        assert!(task <= 384, "task {task} B");
    }
}
