//! An HTTP/1.x server connection, written once for every runtime: requests read through
//! the core's [`wire`](crate::wire) codec, each handed to its [`Service`] (or answered by
//! the server itself), what each request's [`Exchange`](crate::driver::Exchange) yields
//! written back, and the socket handed to the WebSocket pump after an upgrade.
//!
//! An adapter's standalone server accepts connections, implements [`Host`] once for
//! itself (where requests go, its settings, its shutdown, where WebSockets run) and runs
//! [`serve`] for each connection in a task of its own. Both adapters' servers are this
//! loop: the same reads, writes, limits, timeouts and answers on either runtime.
//!
//! What a connection costs while it waits (an idle keep-alive connection, a long poll, an
//! open stream) is its task's future and its socket: no read buffer of its own (reads go
//! through the thread's [`scratch`](crate::driver::scratch) buffer, and only what a request
//! leaves unread is kept) and no response buffer between writes.
//!
//! Every wait has a bound:
//!
//! - a request's head must arrive within [`Config::header_read_timeout`] of the connection
//!   going idle (then the connection closes quietly), the first one within it of the
//!   accept when the adapter says when that was ([`Connection::with_accepted_at`]: a TLS
//!   handshake takes from the same time), its body within
//!   [`Config::body_read_timeout`] of its head (then `408`);
//! - heads are bounded by [`Config::max_head_bytes`] and [`Config::max_headers`] (`431`; `414` for a request line alone over the bound),
//!   bodies by the `max_request_body` of the service they go to (the largest of the
//!   [`Host::services`] outside every service; `413`, checked against a declared length
//!   before the body is read), malformed requests get `400`, and
//!   each of these answers closes the connection;
//! - a write waits at most [`Config::write_timeout`] for the client to take any of it;
//! - bytes a client sends while its response is pending (a pipelined request) are kept up
//!   to 64 KiB (and the one read that passes it), and past that the connection is not read
//!   until the response ends;
//! - an upgrade request that is not answered with `101` closes the connection after its
//!   answer (what the client sent after its head is not HTTP);
//! - a connection lets other tasks run every 32 requests, however fast they come.
//!
//! During graceful shutdown a kept-alive connection stays open while its services drain,
//! so that a client polling again collects its session's close frame: a request on a
//! session's path goes to its service (which serves the sessions it holds, and answers
//! `503` to a request that would open one), any other request gets `503` "Server shutting
//! down." and the connection closes; once the drain ends, idle connections close.

mod conn;
mod deadline;
mod race;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};

use crate::driver::metrics::Unrouted;
use crate::driver::{Config, Connection, OpenConnections, Runtime, Service, Socket, WebSocket};

/// The server a connection belongs to, as [`serve`] sees it. An adapter implements it once,
/// for its standalone server.
///
/// A server with one echo service at `/echo`, on a runtime of one's own (`MyRuntime`, as in
/// the [`Runtime`] example): its accept loop spawns
/// `serve(host.clone(), socket, Connection::new().with_peer(peer))` for each connection.
///
/// ```no_run
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use sockjs_core::Options;
/// use sockjs_core::driver::http1::Host;
/// use sockjs_core::driver::metrics::Unrouted;
/// use sockjs_core::driver::{Config, Runtime, Service, Socket, WebSocket};
///
/// # #[derive(Debug)] struct MyRuntime;
/// # impl Runtime for MyRuntime {
/// #     fn now(&self) -> std::time::Instant { unimplemented!() }
/// #     fn wall_clock(&self) -> std::time::SystemTime { unimplemented!() }
/// #     fn spawn(&self, _: sockjs_core::driver::Task) { unimplemented!() }
/// #     fn timer(&self, _: std::time::Instant) -> Pin<Box<dyn sockjs_core::driver::Timer>> {
/// #         unimplemented!()
/// #     }
/// #     fn random_seed(&self) -> u64 { 7 }
/// # }
/// struct MyServer {
///     runtime: Arc<MyRuntime>,
///     config: Config,
///     echo: Service,
///     unrouted: Unrouted,
///     stopping: AtomicBool,
/// }
///
/// impl MyServer {
///     fn new(runtime: Arc<MyRuntime>) -> MyServer {
///         let options = Options { prefix: "/echo".into(), ..Options::default() };
///         let echo = Service::new(options, Config::default(), runtime.clone(), |mut s| async move {
///             while let Some(text) = s.recv().await {
///                 let _ = s.send(text).await;
///             }
///         })
///         .expect("valid options");
///         MyServer {
///             runtime,
///             config: Config::default(),
///             echo,
///             unrouted: Unrouted::default(),
///             stopping: AtomicBool::new(false),
///         }
///     }
/// }
///
/// impl Host for MyServer {
///     fn runtime(&self) -> &dyn Runtime {
///         &*self.runtime
///     }
///     fn config(&self) -> &Config {
///         &self.config
///     }
///     fn services(&self) -> impl Iterator<Item = &Service> {
///         std::iter::once(&self.echo)
///     }
///     fn route(&self, path: &str) -> Option<(&Service, usize)> {
///         // The service knows its own prefix: no mount in front of it.
///         self.echo.matches(path).then_some((&self.echo, 0))
///     }
///     fn unrouted(&self) -> &Unrouted {
///         &self.unrouted
///     }
///     fn is_shutting_down(&self) -> bool {
///         self.stopping.load(Ordering::Acquire)
///     }
///     fn shutdown_started(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
///         // This server has no graceful shutdown signal to wait on.
///         Box::pin(std::future::pending())
///     }
///     fn spawn_websocket<S: Socket>(self: &Arc<Self>, websocket: WebSocket<S>) {
///         self.runtime.spawn(Box::pin(websocket));
///     }
/// }
/// ```
pub trait Host: Send + Sync + Sized + 'static {
    /// The runtime: the time and timers.
    fn runtime(&self) -> &dyn Runtime;

    /// The server's settings: its read, write and header limits and timeouts.
    fn config(&self) -> &Config;

    /// Every service of the server. Each holds the request bodies that go to it to its own
    /// [`Options::max_request_body`](crate::Options::max_request_body) as the connection
    /// reads them (longer ones get `413`, before they are read when their length is
    /// declared); the largest bounds those outside every service.
    fn services(&self) -> impl Iterator<Item = &Service>;

    /// The service that serves `path`, and how many bytes at its start are a mount prefix
    /// the server matched in front of the service (`0` when the service's own
    /// [`Options::prefix`](crate::Options::prefix) is its place; see
    /// [`Service::submit_mounted`]). `None`: the request is the server's to answer
    /// ([`fallback`](Host::fallback)).
    fn route(&self, path: &str) -> Option<(&Service, usize)>;

    /// Answers a request outside every service, which carries the client's
    /// [`PeerAddr`](crate::PeerAddr) when it is known. `None` (the default): the engine's
    /// `404`, counted in [`unrouted`](Host::unrouted).
    fn fallback(&self, request: Request<Bytes>) -> Option<Response<Bytes>> {
        drop(request);
        None
    }

    /// Adds the server's own headers to a response it writes (default: none). Not called
    /// for the answers to requests that could not be read (400, 408, 413, 414, 431).
    fn decorate(&self, headers: &mut HeaderMap) {
        let _ = headers;
    }

    /// Where the server counts its answers to requests that reached no service.
    fn unrouted(&self) -> &Unrouted;

    /// Whether graceful shutdown has started.
    fn is_shutting_down(&self) -> bool;

    /// A future that completes once graceful shutdown starts (or never, for a server
    /// without one). Each connection makes one, the first time it waits idle, and keeps
    /// it for its later waits.
    ///
    /// From then on an idle connection stays open until [`shutdown`](crate::driver::shutdown)
    /// has drained every service (no session or handler left), since a polling client may
    /// still collect its close frame on it, or until its
    /// [`header_read_timeout`](crate::driver::Config::header_read_timeout): a server
    /// that shuts down gracefully runs [`shutdown`](crate::driver::shutdown).
    fn shutdown_started(&self) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// Runs a connection that became a WebSocket to its end, in a task of its own (which
    /// then holds nothing of the connection's HTTP state).
    fn spawn_websocket<S: Socket>(self: &Arc<Self>, websocket: WebSocket<S>);

    /// The server's open connections, if it bounds them
    /// ([`Config::max_connections`](crate::driver::Config::max_connections)): a connection
    /// that has served a request and waits idle for the next closes when they ask for its
    /// place ([`OpenConnections::idle`](crate::driver::OpenConnections::idle)). `None`
    /// (the default): idle connections close only on their timeout or at shutdown.
    fn open_connections(&self) -> Option<&OpenConnections> {
        None
    }
}

/// Serves one connection of `host` until the client closes it, it fails, a limit or
/// timeout ends it, graceful shutdown closes it while idle, or it becomes a WebSocket
/// (handed to [`Host::spawn_websocket`]). `connection`: what each request's service is
/// told of it (the client's address, TLS, a liveness probe).
///
/// An error is the connection's own (reset, timed out, a write that failed) and worth a
/// debug log at most; whatever the client is owed was answered or is lost with it.
pub fn serve<H: Host, S: Socket>(
    host: Arc<H>,
    stream: S,
    connection: Connection,
) -> impl Future<Output = io::Result<()>> + Send {
    conn::serve(host, stream, connection)
}

/// Completes once graceful shutdown has started and every service of `host` has ended its
/// drain: when [`serve`] lets an idle connection go. For a connection that has no request
/// yet because it is still in its TLS handshake, which the adapter runs before `serve`:
/// racing the handshake against it, the connection ends no later than an idle one would,
/// rather than holding the shutdown until the handshake's timeout.
pub fn idle_connections_end<H: Host>(host: &H) -> impl Future<Output = ()> + Send + 'static {
    let started = host.shutdown_started();
    let drained = conn::drains_ended(host);
    async move {
        started.await;
        drained.await;
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use super::{Host, serve};
    use crate::driver::metrics::Unrouted;
    use crate::driver::runtime::inert::Inert;
    use crate::driver::{Config, Connection, Runtime, Service, Socket, WebSocket};

    /// A server with no service: every request gets the 404 at once.
    struct Empty<R = Inert> {
        runtime: R,
        config: Config,
        unrouted: Unrouted,
    }

    impl<R: Runtime> Host for Empty<R> {
        fn runtime(&self) -> &dyn Runtime {
            &self.runtime
        }
        fn config(&self) -> &Config {
            &self.config
        }
        fn services(&self) -> impl Iterator<Item = &Service> {
            std::iter::empty()
        }
        fn route(&self, _: &str) -> Option<(&Service, usize)> {
            None
        }
        fn unrouted(&self) -> &Unrouted {
            &self.unrouted
        }
        fn is_shutting_down(&self) -> bool {
            false
        }
        fn shutdown_started(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
            Box::pin(std::future::pending())
        }
        fn spawn_websocket<S: Socket>(self: &Arc<Self>, _: WebSocket<S>) {}
    }

    /// A client that has sent `input` (all there at once) and reads every answer as it comes.
    struct Pipelined {
        input: Vec<u8>,
        at: usize,
        answers: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Socket for Pipelined {
        fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.input.len() - self.at);
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
        fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let answers = buf.windows(12).filter(|w| w == b"HTTP/1.1 404").count();
            self.answers
                .fetch_add(answers, std::sync::atomic::Ordering::Relaxed);
            Ok(buf.len())
        }
        fn poll_readable(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
        fn poll_writable(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn shutdown(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A client that sent `input` and then nothing more, and whose answers are counted.
    fn silent_after(input: &[u8], answers: &Arc<std::sync::atomic::AtomicUsize>) -> Pipelined {
        Pipelined {
            input: input.to_vec(),
            at: 0,
            answers: answers.clone(),
        }
    }

    /// Polls the connection once: whether it has ended.
    fn ended(connection: &mut Pin<Box<impl Future<Output = io::Result<()>>>>) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        connection.as_mut().poll(&mut cx).is_ready()
    }

    /// The first request head is due within the header read timeout of when the adapter
    /// took the connection on, when it says (`Connection::with_accepted_at`: the time a TLS
    /// handshake took counts), of when serving started otherwise; every later head within
    /// the timeout of the answer before it, however long ago the accept was.
    #[test]
    fn the_first_head_is_due_a_header_read_timeout_after_the_accept() {
        use std::time::{Duration, Instant};

        use super::deadline::tests::Manual;

        let s = Duration::from_secs;
        let t0 = Instant::now() + s(60);
        let host = |now: Instant| {
            Arc::new(Empty {
                runtime: Manual::at(now),
                config: Config {
                    header_read_timeout: s(10),
                    ..Config::default()
                },
                unrouted: Unrouted::default(),
            })
        };
        let answers = Arc::new(std::sync::atomic::AtomicUsize::new(0));

        // Accepted 4 s before serving started (a slow handshake): cut 6 s in.
        let server = host(t0);
        let connection = Connection::new().with_accepted_at(t0 - s(4));
        let mut served = Box::pin(serve(
            server.clone(),
            silent_after(b"", &answers),
            connection,
        ));
        assert!(!ended(&mut served));
        server.runtime.set(t0 + s(5));
        assert!(!ended(&mut served));
        server.runtime.set(t0 + s(6));
        assert!(ended(&mut served), "the head was due 10 s after the accept");

        // Not said: 10 s from when serving started.
        let server = host(t0);
        let mut served = Box::pin(serve(
            server.clone(),
            silent_after(b"", &answers),
            Connection::new(),
        ));
        assert!(!ended(&mut served));
        server.runtime.set(t0 + s(9));
        assert!(!ended(&mut served));
        server.runtime.set(t0 + s(10));
        assert!(ended(&mut served));

        // Accepted long ago, a first request in time: the next head has the whole timeout
        // from its answer.
        let server = host(t0);
        let connection = Connection::new().with_accepted_at(t0 - s(9));
        let request = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut served = Box::pin(serve(
            server.clone(),
            silent_after(request, &answers),
            connection,
        ));
        let before = answers.load(std::sync::atomic::Ordering::Relaxed);
        assert!(!ended(&mut served));
        assert_eq!(
            answers.load(std::sync::atomic::Ordering::Relaxed),
            before + 1,
            "answered"
        );
        server.runtime.set(t0 + s(9));
        assert!(
            !ended(&mut served),
            "the second head is due 10 s after the first answer"
        );
        server.runtime.set(t0 + s(10));
        assert!(ended(&mut served));
    }

    /// A client that keeps the socket full of requests answered at once does not keep its
    /// connection's task running: it lets other tasks run every few requests.
    #[test]
    fn a_pipelining_client_does_not_hold_its_thread() {
        let host = Arc::new(Empty {
            runtime: Inert,
            config: Config::default(),
            unrouted: Unrouted::default(),
        });
        let answers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let socket = Pipelined {
            input: b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n".repeat(1000),
            at: 0,
            answers: answers.clone(),
        };
        let mut connection = Box::pin(serve(host, socket, Connection::new()));
        let mut cx = Context::from_waker(Waker::noop());
        let count = || answers.load(std::sync::atomic::Ordering::Relaxed);
        let mut polls = 0;
        while count() < 1000 {
            let before = count();
            assert!(connection.as_mut().poll(&mut cx).is_pending());
            let answered = count() - before;
            assert!(
                answered <= super::conn::REQUESTS_BEFORE_YIELD as usize,
                "{answered} requests answered in one poll"
            );
            polls += 1;
            assert!(polls <= 1000, "{} answered", count());
        }
    }
}
