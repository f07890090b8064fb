//! The server: services, the accept loop, executor threads and graceful shutdown.

use std::future::Future;
use std::hash::BuildHasher;
use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use async_executor::Executor;
use async_io::{Async, Timer};
use futures_lite::future;
use sockjs_core::route::Route;
use sockjs_core::{Engine, Options, OptionsError, Start};

use crate::config::Config;
use crate::conn::serve_connection;
use crate::session::Session;
use crate::shard::{Ctx, Handler, Shard};

/// A service before the server starts.
struct ServiceSpec {
    prefix: Arc<str>,
    options: Options,
    handler: Handler,
}

/// A running service: its shards.
struct Service {
    prefix: Arc<str>,
    shards: Vec<Arc<Shard>>,
    next: AtomicUsize,
    /// Keyed per service, so clients cannot aim many sessions at one shard.
    hasher: std::collections::hash_map::RandomState,
}

/// What connection tasks share.
pub(crate) struct Inner {
    pub(crate) ctx: Arc<Ctx>,
    /// Longest prefix first.
    services: Vec<Service>,
    /// The largest `max_request_body` of any service (the decoder's body bound).
    pub(crate) max_body: usize,
}

impl Inner {
    /// The shard that serves `path`, or `None` (404) when no service prefix matches.
    pub(crate) fn route(&self, path: &str) -> Option<Arc<Shard>> {
        let (service, rest) = self.services.iter().find_map(|service| {
            let rest = path.strip_prefix(&*service.prefix)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((service, rest))
        })?;
        let n = service.shards.len();
        let index = match Route::parse(rest) {
            // Requests of one session must meet in one engine.
            Some(Route::Session { session, .. }) if n > 1 => {
                (service.hasher.hash_one(session) % n as u64) as usize
            }
            _ => service.next.fetch_add(1, Ordering::Relaxed) % n,
        };
        service.shards.get(index).cloned()
    }
}

/// Triggers graceful shutdown of a running [`Server`]; cheap to clone.
#[derive(Clone, Debug)]
pub struct ServerHandle {
    trigger: Arc<Mutex<Option<async_channel::Sender<()>>>>,
    signal: async_channel::Receiver<()>,
    /// The running server's shards (empty before `serve` starts).
    shards: Arc<Mutex<Vec<Weak<Shard>>>>,
}

impl ServerHandle {
    fn new() -> Self {
        let (tx, rx) = async_channel::bounded(1);
        ServerHandle {
            trigger: Arc::new(Mutex::new(Some(tx))),
            signal: rx,
            shards: Arc::default(),
        }
    }

    /// Starts graceful shutdown: the server stops accepting, closes every open session with
    /// [`Config::shutdown_code`] and [`Config::shutdown_reason`], and
    /// [`Server::serve`] returns once sessions, handlers and connections are done or
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

    /// Live sessions (open or closing) over every service of the running server: what its
    /// engines hold, counted from the request that creates a session until the engine
    /// forgets it (its disconnect delay after the last receiver left). Zero before
    /// [`Server::serve`] starts and after it returns.
    pub fn session_count(&self) -> usize {
        let shards = self.shards.lock().unwrap_or_else(PoisonError::into_inner);
        shards
            .iter()
            .filter_map(Weak::upgrade)
            .map(|shard| shard.inspect(Engine::session_count))
            .sum()
    }

    /// Resolves once shutdown was requested.
    async fn requested(&self) {
        let _ = self.signal.recv().await;
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
///         let _ = session.send(&message);
///     }
/// })?;
/// let listener = Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 8081))?;
/// async_io::block_on(server.serve(listener))?;
/// # Ok(())
/// # }
/// ```
pub struct Server {
    config: Config,
    services: Vec<ServiceSpec>,
    handle: ServerHandle,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field(
                "services",
                &self.services.iter().map(|s| &*s.prefix).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    /// A server with the default [`Config`] and no services (every request gets 404).
    pub fn new() -> Self {
        Server::with_config(Config::default())
    }

    /// A server with these settings.
    pub fn with_config(config: Config) -> Self {
        Server {
            config,
            services: Vec::new(),
            handle: ServerHandle::new(),
        }
    }

    /// Adds a service at `prefix` (e.g. `/echo`; empty for the root). `options.prefix` is
    /// replaced by `prefix`. `handler` runs once per session, in its own task, when the
    /// session opens.
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
        options.prefix = prefix.to_owned();
        options.validate()?;
        if self.services.iter().any(|s| &*s.prefix == prefix) {
            return Err(OptionsError::Prefix);
        }
        let handler: Handler = Arc::new(move |session| Box::pin(handler(session)));
        self.services.push(ServiceSpec {
            prefix: prefix.into(),
            options,
            handler,
        });
        Ok(self)
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
    /// the graceful shutdown ends (or fails at once if an engine cannot start).
    ///
    /// The server runs on its own executor: this future drives it on the calling thread and
    /// [`Config::threads`]` - 1` more threads join while it runs. Poll it with any
    /// `block_on` (`async_io::block_on`, `smol::block_on`). Handler tasks still running
    /// when it returns are dropped.
    pub async fn serve(self, listener: Async<TcpListener>) -> io::Result<()> {
        let executor = Arc::new(Executor::new());
        let (_shutdown_tx, shutdown_rx) = async_channel::bounded::<()>(1);
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let ctx = Arc::new(Ctx {
            config: self.config,
            executor: Arc::downgrade(&executor),
            shutting_down: AtomicBool::new(false),
            shutdown_rx,
            stop_rx: stop_rx.clone(),
            sessions: AtomicUsize::new(0),
            handlers: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            next_request: AtomicU64::new(1),
        });
        let inner = Arc::new(build(self.services, &ctx)?);
        *self
            .handle
            .shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = inner
            .services
            .iter()
            .flat_map(|service| service.shards.iter().map(Arc::downgrade))
            .collect();
        let shutdown_tx = Mutex::new(Some(_shutdown_tx));

        for service in &inner.services {
            for shard in &service.shards {
                executor.spawn(shard.clone().timer_task()).detach();
            }
            tracing::info!(service = %service.prefix, shards = service.shards.len(), "service ready");
        }
        let mut workers = Vec::new();
        for i in 1..ctx.config.threads.max(1) {
            let executor = executor.clone();
            let stop = stop_rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sockjs-smol-{i}"))
                .spawn(move || {
                    async_io::block_on(executor.run(async {
                        let _ = stop.recv().await;
                    }))
                });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(e) => tracing::warn!(error = %e, "could not start a worker thread"),
            }
        }

        let handle = self.handle;
        let main = async {
            if let Ok(addr) = listener.get_ref().local_addr() {
                tracing::info!(%addr, "listening");
            }
            accept_loop(&listener, &inner, &handle).await;
            drop(listener);
            // Graceful shutdown.
            ctx.shutting_down.store(true, Ordering::Release);
            shutdown_tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let config = &ctx.config;
            for service in &inner.services {
                for shard in &service.shards {
                    shard.with_engine(|st, now| {
                        st.engine
                            .close_all(now, config.shutdown_code, &config.shutdown_reason)
                    });
                }
            }
            let deadline = Instant::now() + config.shutdown_timeout;
            loop {
                let busy = ctx.sessions.load(Ordering::Acquire)
                    + ctx.handlers.load(Ordering::Acquire)
                    + ctx.connections.load(Ordering::Acquire);
                if busy == 0 {
                    tracing::info!("graceful shutdown complete");
                    break;
                }
                if Instant::now() >= deadline {
                    tracing::warn!(
                        sessions = ctx.sessions.load(Ordering::Acquire),
                        handlers = ctx.handlers.load(Ordering::Acquire),
                        connections = ctx.connections.load(Ordering::Acquire),
                        "graceful shutdown timed out"
                    );
                    break;
                }
                Timer::after(Duration::from_millis(10)).await;
            }
        };
        executor.run(main).await;
        drop(stop_tx);
        drop(inner);
        // Worker threads end as soon as they see the stop signal; they are not joined so
        // that this future never blocks its thread.
        drop(workers);
        Ok(())
    }
}

async fn accept_loop(listener: &Async<TcpListener>, inner: &Arc<Inner>, handle: &ServerHandle) {
    enum Event {
        Accepted(io::Result<(Async<std::net::TcpStream>, std::net::SocketAddr)>),
        Shutdown,
    }
    loop {
        let accept = async { Event::Accepted(listener.accept().await) };
        let shutdown = async {
            handle.requested().await;
            Event::Shutdown
        };
        match future::or(shutdown, accept).await {
            Event::Accepted(Ok((stream, peer))) => {
                let _ = stream.get_ref().set_nodelay(true);
                inner
                    .ctx
                    .spawn(serve_connection(inner.clone(), stream, peer));
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

fn build(specs: Vec<ServiceSpec>, ctx: &Arc<Ctx>) -> io::Result<Inner> {
    let seed = std::collections::hash_map::RandomState::new();
    let mut services = Vec::with_capacity(specs.len());
    let mut max_body = 0;
    for spec in specs {
        max_body = max_body.max(spec.options.max_request_body);
        let mut shards = Vec::new();
        for i in 0..ctx.config.shards.max(1) {
            let start = Start {
                now: Instant::now(),
                wall_clock: SystemTime::now(),
                seed: seed.hash_one((&*spec.prefix, i)),
            };
            let engine = Engine::new(spec.options.clone(), start)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            shards.push(Arc::new(Shard::new(
                engine,
                ctx.clone(),
                spec.handler.clone(),
                spec.prefix.clone(),
            )));
        }
        services.push(Service {
            prefix: spec.prefix,
            shards,
            next: AtomicUsize::new(0),
            hasher: std::collections::hash_map::RandomState::new(),
        });
    }
    services.sort_by_key(|s| std::cmp::Reverse(s.prefix.len()));
    Ok(Inner {
        ctx: ctx.clone(),
        services,
        max_body: max_body.max(1),
    })
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
