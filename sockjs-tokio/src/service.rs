//! The tower service: one SockJS endpoint, mountable in axum, hyper or [`serve`](crate::serve).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::upgrade::OnUpgrade;
use sockjs_core::{Engine, Handshake, Options, OptionsError, RequestId, Start};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::Instrument as _;

use crate::body::Body;
use crate::session::Session;
use crate::shard::{AbortGuard, Delivered, Reply, Shard, Slot};
use crate::{OriginalUri, ws};

/// A boxed error, as request bodies report them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Handler = Arc<dyn Fn(Session) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Adapter limits (the engine's own limits live in [`Options`]).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) outbound_frames: usize,
    pub(crate) outbound_bytes: usize,
    pub(crate) inbound_messages: usize,
    pub(crate) inbound_bytes: usize,
    pub(crate) max_request_body: usize,
    pub(crate) max_message_size: usize,
    pub(crate) delivery_wait: Duration,
    pub(crate) body_timeout: Duration,
}

/// What every shard of a service shares.
pub(crate) struct Common {
    handler: Handler,
    pub(crate) config: Config,
    pub(crate) stopped: AtomicBool,
    runtime: OnceLock<Handle>,
}

impl Common {
    /// Spawns on the current runtime, or the one the service first ran on.
    pub(crate) fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match Handle::try_current() {
            Ok(handle) => {
                handle.spawn(future);
            }
            Err(_) => match self.runtime.get() {
                Some(handle) => {
                    handle.spawn(future);
                }
                None => tracing::error!("no tokio runtime to spawn on"),
            },
        }
    }

    pub(crate) fn spawn_handler(&self, mut session: Session) {
        session.compact_request();
        let span = tracing::info_span!(
            "sockjs_session",
            id = %session.id(),
            transport = session.transport().name()
        );
        let future = (self.handler)(session);
        self.spawn(future.instrument(span));
    }
}

struct Inner {
    common: Arc<Common>,
    shards: Box<[Arc<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    next_request: AtomicU64,
    next_shard: AtomicUsize,
    prefix: String,
    started: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.common.stopped.store(true, Ordering::Release);
        for shard in &self.shards {
            shard.notify.notify_one();
        }
    }
}

/// A SockJS service: a [`tower_service::Service`] for `http::Request<B>` that answers every
/// SockJS endpoint under the path it is mounted at.
///
/// Cheap to clone (clones share the sessions). Build with [`SockJs::new`] or
/// [`SockJs::builder`]; see the [crate documentation](crate) for mounting it.
#[derive(Clone)]
pub struct SockJs {
    inner: Arc<Inner>,
}

impl fmt::Debug for SockJs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SockJs")
            .field("prefix", &self.inner.prefix)
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

/// Configures a [`SockJs`] service beyond its [`Options`].
#[derive(Debug, Clone)]
pub struct Builder {
    options: Options,
    shards: Option<usize>,
    outbound_frames: usize,
    inbound_messages: usize,
    delivery_wait: Duration,
    body_timeout: Duration,
}

impl Builder {
    /// Number of engine shards (default: the available parallelism). Sessions are spread
    /// over shards by their id; each shard has its own lock and timer task.
    pub fn shards(mut self, shards: usize) -> Builder {
        self.shards = Some(shards.max(1));
        self
    }

    /// Most frames queued for one connection (a streaming response or a WebSocket) that
    /// the client has not read yet (default 256). The queue is also bounded by
    /// [`Options::max_queued_bytes`] bytes. On overflow the connection is dropped and the
    /// engine told it was aborted.
    pub fn outbound_queue(mut self, frames: usize) -> Builder {
        self.outbound_frames = frames.max(1);
        self
    }

    /// Most received messages queued for one session that the application has not taken
    /// with [`Session::recv`] yet (default 1024). The queue is also bounded by
    /// [`Options::max_queued_bytes`] bytes. On overflow the session is closed with
    /// `1013 "Application not reading"`.
    pub fn inbound_queue(mut self, messages: usize) -> Builder {
        self.inbound_messages = messages.max(1);
        self
    }

    /// How long an `xhr_send` or `jsonp_send` may wait for the application to take the
    /// messages it delivered before it is answered anyway (default 500 ms; zero: answer at
    /// once).
    ///
    /// A message is taken when the handler comes back to [`Session::recv`] after receiving
    /// it. Waiting keeps replies in order with the client's next poll (an echo's reply is
    /// queued before the client learns its send succeeded) and slows down a client that
    /// sends faster than the application reads.
    pub fn delivery_wait(mut self, wait: Duration) -> Builder {
        self.delivery_wait = wait;
        self
    }

    /// Longest time a request body may take to arrive once its head was read (default
    /// 10 s). A client that stops sending in the middle of a body gets
    /// `408 Request Timeout` and its connection is closed, instead of holding the request
    /// open forever (slowloris protection).
    pub fn request_body_timeout(mut self, timeout: Duration) -> Builder {
        self.body_timeout = timeout;
        self
    }

    /// Builds the service; `handler` runs once per session, in its own task.
    pub fn build<H, F>(self, handler: H) -> Result<SockJs, OptionsError>
    where
        H: Fn(Session) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let options = self.options;
        options.validate()?;
        let shards = self.shards.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(64)
        });
        let common = Arc::new(Common {
            handler: Arc::new(move |session| Box::pin(handler(session))),
            config: Config {
                outbound_frames: self.outbound_frames,
                outbound_bytes: options.max_queued_bytes,
                inbound_messages: self.inbound_messages,
                inbound_bytes: options.max_queued_bytes,
                max_request_body: options.max_request_body,
                max_message_size: options.max_message_size,
                delivery_wait: self.delivery_wait,
                body_timeout: self.body_timeout,
            },
            stopped: AtomicBool::new(false),
            runtime: OnceLock::new(),
        });
        let hasher = std::collections::hash_map::RandomState::new();
        let seed = {
            let mut h = hasher.build_hasher();
            h.write_u128(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default(),
            );
            h.finish()
        };
        let mut list = Vec::with_capacity(shards);
        for index in 0..shards {
            let start = Start {
                now: Instant::now(),
                wall_clock: SystemTime::now(),
                seed: seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            };
            let engine = Engine::new(options.clone(), start)?;
            list.push(Arc::new(Shard::new(engine, common.clone())));
        }
        Ok(SockJs {
            inner: Arc::new(Inner {
                common,
                shards: list.into_boxed_slice(),
                hasher,
                next_request: AtomicU64::new(1),
                next_shard: AtomicUsize::new(0),
                prefix: options.prefix.clone(),
                started: AtomicBool::new(false),
            }),
        })
    }
}

impl SockJs {
    /// A service with these options and this per-session handler.
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

    /// A builder with these options and the default adapter limits.
    pub fn builder(options: Options) -> Builder {
        Builder {
            options,
            shards: None,
            outbound_frames: 256,
            inbound_messages: 1024,
            delivery_wait: Duration::from_millis(500),
            body_timeout: Duration::from_secs(10),
        }
    }

    /// Closes every open session with this code and reason (graceful shutdown): streams
    /// and polls get the close frame and end, WebSockets get it and close. Sessions keep
    /// answering the close frame until the disconnect delay passes.
    pub fn close_all(&self, code: u16, reason: &str) {
        for shard in &self.inner.shards {
            shard.run(|state, now| state.engine.close_all(now, code, reason));
        }
    }

    /// Live sessions (open or closing), over all shards.
    pub fn session_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.peek(Engine::session_count))
            .sum()
    }

    /// The number of engine shards.
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    fn pick(&self, path: &str) -> &Arc<Shard> {
        let inner = &*self.inner;
        if inner.shards.len() == 1 {
            return &inner.shards[0];
        }
        let within = if inner.prefix.is_empty() {
            Some(path)
        } else {
            path.strip_prefix(inner.prefix.as_str())
        };
        let index = match within.and_then(session_segment) {
            Some(session) => inner.hasher.hash_one(session) as usize,
            None => inner.next_shard.fetch_add(1, Ordering::Relaxed),
        };
        &inner.shards[index % inner.shards.len()]
    }

    fn start(&self) {
        if self.inner.started.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Ok(handle) = Handle::try_current() {
            let _ = self.inner.common.runtime.set(handle);
        }
        for shard in &self.inner.shards {
            shard.ensure_timer();
        }
    }

    /// Answers one request.
    async fn handle<B>(self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        self.start();
        let (mut parts, body) = request.into_parts();
        let on_upgrade = parts.extensions.remove::<OnUpgrade>();
        restore_empty_segment(&mut parts);
        let limit = self.inner.common.config.max_request_body;
        let timeout = self.inner.common.config.body_timeout;
        let body = match tokio::time::timeout(timeout, read_body(body, &parts.headers, limit)).await
        {
            Ok(Ok(body)) => body,
            Ok(Err(response)) => return response,
            Err(_) => {
                let mut response = error(StatusCode::REQUEST_TIMEOUT, "Request body timeout.\n");
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return response;
            }
        };
        let location = hixie76_location(&parts);
        let shard = self.pick(parts.uri.path()).clone();
        let id = RequestId(self.inner.next_request.fetch_add(1, Ordering::Relaxed));
        let (reply_tx, reply_rx) = oneshot::channel();
        let mut guard = AbortGuard::new(shard.clone(), id);
        let request = Request::from_parts(parts, body);
        let ((), delivered) = shard.run_delivering(|state, now| {
            state.requests.insert(
                id,
                Slot::Waiting {
                    reply: reply_tx,
                    location,
                },
            );
            state.engine.handle_request(now, id, request);
        });
        let Ok(reply) = reply_rx.await else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "Request dropped.\n");
        };
        match reply {
            Reply::Full(response) => {
                guard.disarm();
                let wait = self.inner.common.config.delivery_wait;
                let taken = |delivered: &[Delivered]| delivered.iter().all(Delivered::is_done);
                if !wait.is_zero() && !taken(&delivered) {
                    // The handler was just woken with the messages: let it run before
                    // arming a timer, which it usually makes unnecessary.
                    tokio::task::yield_now().await;
                    if !taken(&delivered) {
                        let all = async {
                            for delivery in delivered {
                                delivery.wait().await;
                            }
                        };
                        let _ = tokio::time::timeout(wait, all).await;
                    }
                }
                response.map(Body::full)
            }
            Reply::Stream(head, rx) => head.map(|()| Body::stream(rx, guard)),
            Reply::Upgrade(head, handshake, rx) => {
                let Some(on_upgrade) = on_upgrade else {
                    tracing::warn!("websocket upgrade without a hyper connection to upgrade");
                    drop(guard);
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Upgrade not supported by this server.\n",
                    );
                };
                let max_message = self.inner.common.config.max_message_size;
                self.inner
                    .common
                    .spawn(ws::run(on_upgrade, handshake, rx, guard, max_message));
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
        }
    }
}

/// The `I` of a `/S/I/T` path, found without validating the rest: every path the engine
/// routes to a session endpoint has this shape, so its requests always meet the same
/// shard; the few other paths of this shape get 404 from whichever shard they reach.
fn session_segment(path: &str) -> Option<&str> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let (_, session, _) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some(session)
}

/// Reads a whole request body, refusing more than `limit` bytes with 413.
async fn read_body<B>(
    body: B,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<Bytes, Response<Body>>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large.\n");
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    // A body that comes in one chunk (the usual case) is kept as it is, without a copy.
    let mut first = Bytes::new();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.as_mut().frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                let error: BoxError = error.into();
                tracing::debug!(%error, "request body failed");
                return Err(self::error(StatusCode::BAD_REQUEST, "Bad request body.\n"));
            }
        };
        if let Ok(mut data) = frame.into_data() {
            let held = first.len() + buf.len();
            if held.saturating_add(data.remaining()) > limit {
                return Err(too_large());
            }
            if held == 0 {
                first = data.copy_to_bytes(data.remaining());
                continue;
            }
            if !first.is_empty() {
                buf.extend_from_slice(&first);
                first = Bytes::new();
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                let len = chunk.len();
                buf.extend_from_slice(chunk);
                data.advance(len);
            }
        }
    }
    Ok(if buf.is_empty() { first } else { buf.freeze() })
}

/// axum's `nest_service` turns `/echo//` into `/` (it drops the empty segment after the
/// prefix), which would make near-miss paths such as `P//` or `P//xhr` routable. When the
/// router recorded an [`OriginalUri`] that ends with `/` + the path we were given, put the
/// lost `/` back so the engine sees the real path (and answers 404).
fn restore_empty_segment(parts: &mut http::request::Parts) {
    let Some(original) = parts.extensions.get::<OriginalUri>() else {
        return;
    };
    let seen = parts.uri.path();
    let lost = seen.starts_with('/')
        && original
            .0
            .path()
            .strip_suffix(seen)
            .is_some_and(|head| head.len() > 1 && head.ends_with('/'));
    if !lost {
        return;
    }
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("/{seen}?{query}"),
        None => format!("/{seen}"),
    };
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = http::uri::PathAndQuery::try_from(path_and_query).ok();
    if let Ok(uri) = http::Uri::from_parts(uri) {
        parts.uri = uri;
    }
}

/// For a hixie-76 handshake under a path-stripping router: the `Sec-WebSocket-Location`
/// built from the [`OriginalUri`] the router recorded.
fn hixie76_location(parts: &http::request::Parts) -> Option<HeaderValue> {
    const KEY1: header::HeaderName = header::HeaderName::from_static("sec-websocket-key1");
    if !parts.headers.contains_key(KEY1) {
        return None;
    }
    let original = parts.extensions.get::<OriginalUri>()?;
    let scheme = if original.0.scheme_str() == Some("https") {
        "wss"
    } else {
        "ws"
    };
    let host = parts.headers.get(header::HOST)?.to_str().ok()?;
    let path = original.0.path_and_query().map_or("/", |p| p.as_str());
    HeaderValue::from_str(&format!("{scheme}://{host}{path}")).ok()
}

fn error(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::full(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

/// The future of [`SockJs`]'s `call`.
pub struct ResponseFuture {
    inner: Pin<Box<dyn Future<Output = Response<Body>> + Send>>,
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx).map(Ok)
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
            inner: Box::pin(self.clone().handle(request)),
        }
    }
}
