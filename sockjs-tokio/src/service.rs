//! The tower service: one SockJS endpoint, mountable in axum, hyper or [`serve`](crate::serve).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use sockjs_core::driver::metrics::Metrics;
use sockjs_core::driver::{Admission, Config, Exchange, Service, Session, web};
use sockjs_core::{Content, Handshake, Options, OptionsError};

use crate::body::Body;
use crate::runtime::Tokio;
use crate::socket::Upgrade;

/// A boxed error, as request bodies report them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A SockJS service: a [`tower_service::Service`] for `http::Request<B>` that answers every
/// SockJS endpoint under the path it is mounted at.
///
/// Cheap to clone (clones share the sessions). Build with [`SockJs::new`] or
/// [`SockJs::builder`]; see the [crate documentation](crate) for mounting it.
///
/// A request's extensions (what middleware in front set) reach the session it opens, in
/// its opening request; the extensions of a request that opens none are dropped with it
/// while the service's lock for its session is held, so a value whose `Drop` waits on a
/// lock of the application's, or calls into this service, does not belong there.
///
/// Its tasks (session handlers, WebSockets, its timers) run on the tokio runtime of the
/// request that starts them. A service kept beyond that runtime (a `static` one shared by
/// tests that each build a runtime) keeps working on the next: the handlers and
/// WebSockets that ran on the first runtime end with it, and the timers (heartbeats,
/// disconnect delays) start again on the runtime of the next request.
#[derive(Clone)]
pub struct SockJs {
    service: Service,
}

impl fmt::Debug for SockJs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SockJs").field(&self.service).finish()
    }
}

/// Configures a [`SockJs`] service beyond its [`Options`].
#[derive(Debug, Clone)]
pub struct Builder {
    options: Options,
    config: Config,
    admission: Option<Admission>,
}

impl Builder {
    /// The settings of the service (shards, queues, delivery wait; see [`Config`]).
    pub fn config(mut self, config: Config) -> Builder {
        self.config = config;
        self
    }

    /// An admission hook: every request that would open a session waits for the hook's
    /// verdict, and the session opens only if it admits the request (see [`Admission`]).
    /// The same as sockjs-smol's `Server::admission`.
    ///
    /// ```
    /// use sockjs_tokio::{Admission, Options, Rejection, SockJs};
    ///
    /// struct User(String);
    ///
    /// # fn main() -> Result<(), sockjs_tokio::OptionsError> {
    /// let chat = SockJs::builder(Options::default())
    ///     .admission(Admission::new(|request| async move {
    ///         match request.cookie("sid") {
    ///             Some(sid) => Ok(User(sid.to_owned())), // look it up in a real store
    ///             None => Err(Rejection::unauthorized()),
    ///         }
    ///     }))
    ///     .build(|session| async move {
    ///         let Some(User(name)) = session.admitted::<User>() else { return };
    ///         let _ = session.send(format!("welcome, {name}")).await;
    ///     })?;
    /// # drop(chat);
    /// # Ok(())
    /// # }
    /// ```
    pub fn admission(mut self, admission: Admission) -> Builder {
        self.admission = Some(admission);
        self
    }

    /// Builds the service; `handler` runs once per session, in its own task.
    pub fn build<H, F>(self, handler: H) -> Result<SockJs, OptionsError>
    where
        H: Fn(Session) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let runtime = Arc::new(Tokio::default());
        let service = Service::new(self.options, self.config, runtime, handler)?;
        if let Some(admission) = self.admission {
            // A fresh service has no hook yet: this cannot fail.
            let _ = service.set_admission(admission);
        }
        Ok(SockJs { service })
    }
}

impl SockJs {
    /// A service with these options, the default [`Config`] and this per-session handler.
    ///
    /// # Panics
    ///
    /// If the options are invalid ([`Options::validate`]); use [`SockJs::builder`] to get
    /// the error instead.
    pub fn new<H, F>(options: Options, handler: H) -> SockJs
    where
        H: Fn(Session) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        match SockJs::builder(options).build(handler) {
            Ok(service) => service,
            Err(error) => panic!("invalid SockJS options: {error}"),
        }
    }

    /// A builder with these options and the default [`Config`].
    pub fn builder(options: Options) -> Builder {
        Builder {
            options,
            config: Config::default(),
            admission: None,
        }
    }

    /// Closes every open session with this code and reason (graceful shutdown): streams
    /// and polls get the close frame and end, WebSockets get it and close. Sessions keep
    /// answering the close frame until the disconnect delay passes.
    pub fn close_all(&self, code: u16, reason: &str) {
        self.service.close_all(code, reason);
    }

    /// Starts graceful shutdown under axum or hyper (the standalone [`serve`](crate::serve)
    /// does it itself): the service opens no session from now on (`503`; a request still
    /// arriving cannot slip one in) and closes every session with
    /// [`Config::shutdown_code`] and [`Config::shutdown_reason`]. Call it from the
    /// server's shutdown signal, so that its own graceful shutdown finds polls and streams
    /// ending; then wait for the WebSockets with [`settled`](SockJs::settled).
    ///
    /// ```no_run
    /// # async fn run(listener: tokio::net::TcpListener, app: axum::Router, chat: sockjs_tokio::SockJs) {
    /// let closing = chat.clone();
    /// let _ = axum::serve(listener, app)
    ///     .with_graceful_shutdown(async move {
    ///         let _ = tokio::signal::ctrl_c().await;
    ///         closing.shutdown();
    ///     })
    ///     .await;
    /// chat.settled(std::time::Duration::from_secs(1)).await;
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.service.start_shutdown();
    }

    /// Completes with `true` once the service holds no request and no handler runs (every
    /// WebSocket has written its close and let go of its connection), or with `false`
    /// after `timeout`. WebSockets live outside the HTTP connections axum's graceful
    /// shutdown waits for: after [`shutdown`](SockJs::shutdown) and that, this is the wait
    /// for them. The handlers of HTTP sessions closed by the shutdown run until the
    /// sessions are forgotten, one [`Options::disconnect_delay`](crate::Options::disconnect_delay)
    /// later (a client polling again meanwhile gets the close frame): a `timeout` shorter
    /// than that returns `false` while they run.
    pub async fn settled(&self, timeout: std::time::Duration) -> bool {
        self.service.settled(timeout).await
    }

    /// Live sessions (open or closing), over all shards.
    pub fn session_count(&self) -> usize {
        self.service.session_count()
    }

    /// Requests the service holds (pending receivers, open streams and WebSockets): zero
    /// once every client is gone.
    pub fn open_requests(&self) -> usize {
        self.service.open_requests()
    }

    /// Handler tasks that have not returned yet.
    pub fn running_handlers(&self) -> usize {
        self.service.running_handlers()
    }

    /// The number of engine shards.
    pub fn shard_count(&self) -> usize {
        self.service.shard_count()
    }

    /// The settings the service runs with.
    pub fn config(&self) -> &Config {
        self.service.config()
    }

    /// A snapshot of the service's counters (see [`metrics`](crate::metrics)). Its
    /// `service` label is the service's own prefix, empty when a router mounts it (see
    /// [`Routes::metrics`](crate::Routes::metrics), which labels by mount prefix).
    pub fn metrics(&self) -> Metrics {
        self.service.metrics()
    }

    /// The driver's service inside, for the standalone server's router.
    pub(crate) fn service(&self) -> &Service {
        &self.service
    }
}

/// Answers one request for `service` (its `call`); the connection's facts are the
/// request's extensions (a router or middleware in front may set them: axum's
/// `ConnectInfo` with the `axum` feature, or [`PeerAddr`](sockjs_core::PeerAddr) and
/// friends).
///
/// What hyper holds for a request, in every connection's slot for one (hyper sizes it by
/// this future) and through a long poll's whole wait, is this future (boxed once by
/// [`ResponseFuture`]): the request is taken apart before the `async` block, which then
/// holds its parts, not the request beside them (an `async fn` keeps its arguments for its
/// whole life, also once they have been moved on).
pub(crate) fn answer<B>(
    service: SockJs,
    request: Request<B>,
) -> impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static + use<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    #[cfg(feature = "axum")]
    from_axum(&mut parts);
    web::restore_empty_segment(&mut parts);
    async move {
        let service = service.service;
        let limit = service.options().max_request_body;
        let timeout = service.config().body_read_timeout;
        let read = web::read_body(body, &parts.headers, limit);
        let read = tokio::time::timeout(timeout, read).await;
        let body = match read.unwrap_or(Err(web::BodyError::TimedOut)) {
            Ok(body) => body,
            Err(error) => {
                let response = error.response();
                service.answered(parts.uri.path(), response.status());
                return Ok(response.map(Body::full));
            }
        };
        if on_upgrade.is_none() && service.offers_websocket(&parts) {
            // Nothing to hand the socket over on (not hyper, or the extension taken out
            // on the way): answered before the service opens a session (and its admission
            // hook runs) for a WebSocket that could never run.
            tracing::warn!("websocket upgrade without a hyper connection to upgrade");
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            service.answered(parts.uri.path(), status);
            return Ok(Body::plain(status, UPGRADE_NOT_SUPPORTED));
        }
        let mut exchange = service.submit(Request::from_parts(parts, body));
        Ok(match exchange.next().await {
            Some(Content::Response(response)) => response.map(Body::full),
            Some(Content::StreamStart(head)) => head.map(|()| Body::stream(exchange)),
            Some(Content::Upgrade {
                response,
                handshake,
            }) => upgrade(exchange, on_upgrade, *response, handshake),
            _ => Body::plain(StatusCode::INTERNAL_SERVER_ERROR, "Request dropped.\n"),
        })
    }
}

/// The answer to a WebSocket request on a connection that cannot be upgraded.
const UPGRADE_NOT_SUPPORTED: &str = "Upgrade not supported by this server.\n";

/// Answers an accepted upgrade and runs the WebSocket once hyper hands the connection over.
fn upgrade(
    exchange: Exchange,
    on_upgrade: Option<OnUpgrade>,
    head: Response<()>,
    handshake: Handshake,
) -> Response<Body> {
    let Some(on_upgrade) = on_upgrade else {
        tracing::warn!("websocket upgrade without a hyper connection to upgrade");
        return Body::plain(StatusCode::INTERNAL_SERVER_ERROR, UPGRADE_NOT_SUPPORTED);
    };
    // hyper hands the connection over once the 101 is out, which a client that reads
    // nothing holds back: bounded as the standalone server's write of the 101 is (the
    // exchange then drops, which tells the engine the request was aborted).
    let wait = exchange.config().write_timeout;
    tokio::spawn(async move {
        let upgraded = match tokio::time::timeout(wait, on_upgrade).await {
            Ok(Ok(upgraded)) => upgraded,
            // hyper's own error, not the client's: the connection is served without
            // upgrades (`http1::Builder::serve_connection` without `with_upgrades()`), so
            // every WebSocket gets its 101 and is cut. Said loudly: nothing else shows it.
            Ok(Err(error)) if error.is_user() => {
                tracing::warn!(
                    %error,
                    "websocket upgrade failed: serve the connection with upgrades \
                     (hyper's `serve_connection(..).with_upgrades()`)"
                );
                return;
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "websocket upgrade failed");
                return;
            }
            Err(_) => {
                tracing::debug!("websocket upgrade: the 101 was not taken in time");
                return;
            }
        };
        // The socket gets a task of its own, holding nothing but its pump.
        match Upgrade::new(upgraded) {
            Upgrade::Tcp(socket, read_ahead) => {
                tokio::spawn(exchange.serve_websocket(socket, read_ahead, handshake));
            }
            Upgrade::Other(socket) => {
                tokio::spawn(exchange.serve_websocket(socket, Vec::new(), handshake));
            }
        }
    });
    let mut response = head.map(|()| Body::empty());
    if matches!(handshake, Handshake::Hixie76 { .. }) {
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(
                Handshake::HIXIE76_REASON.as_bytes(),
            ));
    }
    response
}

/// Copies what axum records (`ConnectInfo<SocketAddr>` from
/// `into_make_service_with_connect_info`, and the unstripped `OriginalUri`) into the
/// extensions the engine reads, unless they are set already.
#[cfg(feature = "axum")]
fn from_axum(parts: &mut http::request::Parts) {
    use axum::extract::ConnectInfo;
    let extensions = &mut parts.extensions;
    if extensions.get::<sockjs_core::PeerAddr>().is_none() {
        if let Some(ConnectInfo(addr)) = extensions.get::<ConnectInfo<std::net::SocketAddr>>() {
            let addr = *addr;
            extensions.insert(sockjs_core::PeerAddr(addr));
        }
    }
    if extensions.get::<sockjs_core::OriginalUri>().is_none() {
        if let Some(axum::extract::OriginalUri(uri)) =
            extensions.get::<axum::extract::OriginalUri>()
        {
            let uri = uri.clone();
            extensions.insert(sockjs_core::OriginalUri(uri));
        }
    }
}

/// The future of [`SockJs`]'s `call`.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B> tower_service::Service<Request<B>> for SockJs
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        ResponseFuture {
            inner: Box::pin(answer(self.clone(), request)),
        }
    }
}

#[cfg(test)]
mod tests {
    /// What hyper holds for a request in flight, a long poll's whole wait, and what it
    /// sizes every connection's slot for a request by: the answer's future, holding the
    /// request's parts once (1,464 B with an `async fn` router in front and the answer's
    /// own `async fn`).
    #[test]
    fn a_request_in_flight_holds_one_small_future() {
        fn output_size<A, B, F>(_: fn(A, B) -> F) -> usize {
            size_of::<F>()
        }
        let size = output_size(super::answer::<hyper::body::Incoming>);
        assert!(size <= 768, "a request's future: {size} B");
    }
}
