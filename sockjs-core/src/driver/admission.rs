//! The admission hook: the application's say, before a session opens, on whether it does.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;

use crate::{PeerAddr, Rejection};

/// What an admitted session carries for its handler.
pub(crate) type Value = Arc<dyn Any + Send + Sync>;

type Verdict = Pin<Box<dyn Future<Output = Result<Value, Rejection>> + Send>>;

type Hook = dyn Fn(AdmissionRequest) -> Verdict + Send + Sync;

/// A service's admission hook: an async function that sees the request that would open a
/// session (its whole head and the client's address) before the session opens, and
/// either admits it with a value the session's handler reads with
/// [`Session::admitted`](crate::driver::Session::admitted), or refuses it with a
/// [`Rejection`].
///
/// Only requests that would open a new session go through it
/// ([`Engine::opens_session`](crate::Engine::opens_session)): a WebSocket upgrade, or a
/// receiving request (`xhr`, `xhr_streaming`, `eventsource`, `htmlfile`, `jsonp`) for a
/// session id the server does not hold. Sends, later polls of a session and the static
/// endpoints never wait for it. What a refusal looks like on each transport is
/// [`Engine::handle_rejected`](crate::Engine::handle_rejected)'s: the status and body on
/// HTTP, the close code and reason on a WebSocket.
///
/// The hook's future runs on the request's own connection task, so a slow hook holds back
/// only that request; it is dropped with the request if the client goes away first. It
/// may take at most [`Config::admission_timeout`](crate::driver::Config::admission_timeout),
/// after which the request is refused with `503` (close `4503`). A hook that panics
/// refuses the request with `500` (close `4500`) and leaves the connection serving (unless
/// the program is built with `panic = "abort"`).
///
/// ```
/// use sockjs_core::Rejection;
/// use sockjs_core::driver::Admission;
///
/// struct User(String);
///
/// let admission = Admission::new(|request| async move {
///     // A real application would look the session cookie up in its store.
///     match request.cookie("sid") {
///         Some("s3cret") => Ok(User("ada".to_owned())),
///         Some(_) => Err(Rejection::forbidden()),
///         None => Err(Rejection::unauthorized()),
///     }
/// });
/// # drop(admission);
/// ```
#[derive(Clone)]
pub struct Admission {
    hook: Arc<Hook>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Admission(..)")
    }
}

impl Admission {
    /// A hook from an async function: `Ok(value)` admits the request and hands `value` to
    /// the session (read it with [`Session::admitted::<T>`](crate::driver::Session::admitted)),
    /// `Err(rejection)` refuses it.
    pub fn new<A, F, T>(hook: A) -> Admission
    where
        A: Fn(AdmissionRequest) -> F + Send + Sync + 'static,
        F: Future<Output = Result<T, Rejection>> + Send + 'static,
        T: Send + Sync + 'static,
    {
        Admission {
            hook: Arc::new(move |request| {
                let verdict = hook(request);
                Box::pin(async move { verdict.await.map(|value| Arc::new(value) as Value) })
            }),
        }
    }
}

/// The request an [`Admission`] hook decides on: the head of the request that would open
/// the session, and who sent it.
///
/// ```
/// use sockjs_core::driver::AdmissionRequest;
///
/// fn token(request: &AdmissionRequest) -> Option<String> {
///     request.query("token").or_else(|| {
///         let header = request.headers().get("authorization")?.to_str().ok()?;
///         Some(header.strip_prefix("Bearer ")?.to_owned())
///     })
/// }
/// ```
pub struct AdmissionRequest {
    head: Arc<http::request::Parts>,
    client: Option<IpAddr>,
}

impl fmt::Debug for AdmissionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionRequest")
            .field("method", &self.head.method)
            .field("uri", &self.head.uri)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl AdmissionRequest {
    /// The request's head: method, URI, headers (cookies included), and extensions such as
    /// the [`PeerAddr`].
    pub fn head(&self) -> &http::request::Parts {
        &self.head
    }

    /// The request's header fields.
    pub fn headers(&self) -> &http::HeaderMap {
        &self.head.headers
    }

    /// The request's URI.
    pub fn uri(&self) -> &http::Uri {
        &self.head.uri
    }

    /// The value of the request's first non-empty cookie named `name`, if it is text.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        let value = crate::response::cookie_value(&self.head.headers, name)?;
        std::str::from_utf8(value).ok()
    }

    /// The value of the query parameter `name`, form-decoded (`+` and `%XX`), if any.
    pub fn query(&self, name: &str) -> Option<String> {
        let value = crate::payload::query_param(self.head.uri.query(), name)?;
        Some(String::from_utf8_lossy(&value).into_owned())
    }

    /// The address of the other end of the connection, when the adapter recorded one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.head.extensions.get::<PeerAddr>().map(|peer| peer.0)
    }

    /// The client's address: the peer's, or behind
    /// [`Options::trusted_proxies`](crate::Options::trusted_proxies) what they say it is;
    /// the same as the session's [`client_addr`](crate::driver::Session::client_addr).
    pub fn client_addr(&self) -> Option<IpAddr> {
        self.client
    }
}

/// The admitted value, carried to the session as a request extension.
#[derive(Clone)]
pub(crate) struct Admitted(pub(crate) Value);

/// What became of a request that waited for the hook.
pub(crate) enum Decided {
    /// Hand it on, the admitted value in its extensions.
    Admitted(http::Request<Bytes>),
    /// Refuse it.
    Refused(http::request::Parts, Rejection),
}

/// One request waiting for its verdict.
pub(crate) struct Pending {
    head: Arc<http::request::Parts>,
    body: Bytes,
    /// In a mutex only so the exchange stays `Sync` (the hook's future need not be): it
    /// is only ever locked by the exchange's owner, never contended.
    verdict: Option<Mutex<Verdict>>,
}

impl Pending {
    /// Asks `admission` about `request`. The hook is called here, outside any lock.
    pub(crate) fn start(
        admission: &Admission,
        request: http::Request<Bytes>,
        options: &crate::Options,
    ) -> Pending {
        let (parts, body) = request.into_parts();
        let peer = crate::peer::Peer::of(&parts).addr;
        let client = crate::client_addr::of_request(&parts, peer, options);
        let head = Arc::new(parts);
        let request = AdmissionRequest {
            head: head.clone(),
            client,
        };
        let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| (admission.hook)(request)));
        Pending {
            head,
            body,
            verdict: verdict.map_err(|_| panicked()).ok().map(Mutex::new),
        }
    }

    /// The verdict once there is one: the request to hand on, or the refusal with its head.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Decided> {
        let verdict = match self.verdict.as_mut() {
            Some(future) => {
                let future = future.get_mut().unwrap_or_else(PoisonError::into_inner);
                match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Pending) => return Poll::Pending,
                    Ok(Poll::Ready(verdict)) => verdict,
                    Err(_) => Err(panicked()),
                }
            }
            None => Err(Rejection::new(StatusCode::INTERNAL_SERVER_ERROR)),
        };
        Poll::Ready(self.finish(verdict))
    }

    /// No verdict in time.
    pub(crate) fn timed_out(&mut self) -> Decided {
        tracing::warn!(uri = %self.head.uri, "admission hook timed out");
        self.finish(Err(Rejection::new(StatusCode::SERVICE_UNAVAILABLE)))
    }

    fn finish(&mut self, verdict: Result<Value, Rejection>) -> Decided {
        // The hook's future holds a reference to the head: gone with it, the head is
        // usually the only one left and needs no copy.
        self.verdict = None;
        let head = std::mem::replace(&mut self.head, Arc::new(empty_parts()));
        let mut parts = Arc::try_unwrap(head).unwrap_or_else(|shared| (*shared).clone());
        match verdict {
            Ok(value) => {
                parts.extensions.insert(Admitted(value));
                Decided::Admitted(http::Request::from_parts(
                    parts,
                    std::mem::take(&mut self.body),
                ))
            }
            Err(rejection) => Decided::Refused(parts, rejection),
        }
    }
}

fn panicked() -> Rejection {
    tracing::error!("admission hook panicked; request refused");
    Rejection::new(StatusCode::INTERNAL_SERVER_ERROR)
}

fn empty_parts() -> http::request::Parts {
    http::Request::new(()).into_parts().0
}
