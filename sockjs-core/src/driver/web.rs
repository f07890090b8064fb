//! HTTP plumbing every adapter needs whatever its runtime or HTTP library: services by
//! mount prefix, whole request bodies, the small plain-text answers.

use std::future::poll_fn;
use std::pin::Pin;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{HeaderMap, Response, StatusCode, Uri};

use crate::OriginalUri;

/// The 404 for a path outside every service, word for word the engine's for a path inside
/// one that it does not serve.
///
/// ```
/// use sockjs_core::driver::web::not_found;
/// let response = not_found();
/// assert_eq!(response.status(), 404);
/// assert_eq!(response.body(), "404 Error: Page not found\n");
/// assert_eq!(response.headers()["content-type"], "text/plain; charset=UTF-8");
/// ```
pub fn not_found() -> Response<Bytes> {
    crate::response::not_found()
}

/// A small `text/plain` response: the engine's own form of its plain answers (an empty
/// `text` gets no `Content-Type`, there being nothing to type).
///
/// ```
/// use sockjs_core::driver::web::plain;
/// let response = plain(http::StatusCode::SERVICE_UNAVAILABLE, "Server shutting down.\n");
/// assert_eq!(response.headers()["content-type"], "text/plain; charset=UTF-8");
/// let empty = plain(http::StatusCode::NO_CONTENT, "");
/// assert!(empty.headers().get("content-type").is_none());
/// ```
pub fn plain(status: StatusCode, text: &'static str) -> Response<Bytes> {
    crate::response::plain(status, text)
}

/// What answers the requests outside every service of a standalone server (its pages, a
/// health check): sockjs-smol's `Server::fallback` and sockjs-tokio's `Routes::fallback`.
/// The request carries the client's [`PeerAddr`](crate::PeerAddr) (and [`Tls`](crate::Tls))
/// when they are known; a `HEAD` is answered without its body.
pub type Fallback =
    std::sync::Arc<dyn Fn(http::Request<Bytes>) -> Response<Bytes> + Send + Sync + 'static>;

/// Headers a standalone server adds to every response it writes that lacks them (e.g. the
/// name of the node behind a load balancer): sockjs-smol's `Server::header` and
/// sockjs-tokio's `Routes::header`. Not the error answers to requests that could not be
/// read (400, 408, 413, 414, 431).
///
/// ```
/// use http::{HeaderMap, HeaderName, HeaderValue};
/// use sockjs_core::driver::web::ServerHeaders;
///
/// let mut server = ServerHeaders::default();
/// server.insert(HeaderName::from_static("x-node"), HeaderValue::from_static("n1"));
/// let mut response = HeaderMap::new();
/// server.decorate(&mut response);
/// assert_eq!(response["x-node"], "n1");
/// let mut own = HeaderMap::new();
/// own.insert("x-node", HeaderValue::from_static("mine"));
/// server.decorate(&mut own);
/// assert_eq!(own["x-node"], "mine");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServerHeaders(HeaderMap);

impl ServerHeaders {
    /// Adds `name: value` (setting a name again replaces its value).
    ///
    /// # Panics
    ///
    /// On a field that frames the message or the connection (`Content-Length`,
    /// `Transfer-Encoding`, `Connection`, `Upgrade`, `Keep-Alive`, `TE`, `Trailer`): the
    /// server writes those itself, and one added to every response would break them (a
    /// length on a `204` or on the `101` of a WebSocket). A server's headers are the
    /// program's own, set once as it is built.
    pub fn insert(&mut self, name: http::HeaderName, value: HeaderValue) {
        const FRAMING: [http::HeaderName; 6] = [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
            header::UPGRADE,
            header::TE,
            header::TRAILER,
        ];
        assert!(
            !FRAMING.contains(&name) && name.as_str() != "keep-alive",
            "server header {name} frames the message; the server writes it itself"
        );
        self.0.insert(name, value);
    }

    /// Adds each header to `headers` unless it has that header already.
    pub fn decorate(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.0 {
            if let header::Entry::Vacant(entry) = headers.entry(name) {
                entry.insert(value.clone());
            }
        }
    }
}

/// Whether `parts` asks a SockJS service for a WebSocket: an HTTP/1.1 upgrade to
/// `websocket` at a path ending in `/websocket` (the raw endpoint, or a session's), whatever
/// the service's prefix and transports. [`Service::offers_websocket`] tells whether one
/// service would upgrade it, which is what an adapter whose connection cannot be upgraded
/// asks before it answers such a request itself.
///
/// [`Service::offers_websocket`]: crate::driver::Service::offers_websocket
///
/// ```
/// let request = http::Request::get("/echo/000/s/websocket")
///     .header("upgrade", "websocket")
///     .header("connection", "Upgrade")
///     .body(())
///     .unwrap();
/// let (parts, ()) = request.into_parts();
/// assert!(sockjs_core::driver::web::asks_for_a_websocket(&parts));
/// ```
pub fn asks_for_a_websocket(parts: &http::request::Parts) -> bool {
    parts.uri.path().ends_with("/websocket") && crate::engine::asks_websocket_upgrade(parts)
}

/// Things (services) by mount prefix; the longest matching prefix wins.
///
/// ```
/// use sockjs_core::driver::web::Mounts;
/// let mounts = Mounts::new().mount("/echo", 1).mount("echo/deep/", 2).mount("", 0);
/// assert_eq!(mounts.find("/echo/info"), Some(("/echo", &1)));
/// assert_eq!(mounts.find("/echo/deep"), Some(("/echo/deep", &2)));
/// assert_eq!(mounts.find("/echoes"), Some(("", &0)));
/// ```
#[derive(Debug, Clone)]
pub struct Mounts<T> {
    /// Longest prefix first.
    mounts: Vec<(String, T)>,
}

/// A mount prefix as both adapters read it: a missing leading `/` added, trailing ones
/// dropped (`echo`, `/echo` and `/echo/` are `/echo`; `""` and `/` the root, `""`).
///
/// ```
/// use sockjs_core::driver::web::mount_prefix;
/// assert_eq!(mount_prefix("echo/"), "/echo");
/// assert_eq!(mount_prefix("/"), "");
/// ```
pub fn mount_prefix(prefix: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() || prefix.starts_with('/') {
        prefix.to_owned()
    } else {
        format!("/{prefix}")
    }
}

impl<T> Default for Mounts<T> {
    fn default() -> Self {
        Mounts { mounts: Vec::new() }
    }
}

impl<T> Mounts<T> {
    /// None.
    pub fn new() -> Mounts<T> {
        Mounts::default()
    }

    /// Adds `value` at a prefix such as `/echo` (a missing leading `/` is added, trailing
    /// ones are dropped; `""` or `"/"` is the root).
    ///
    /// # Panics
    ///
    /// If that prefix is mounted already (`/echo` and `echo/` are one prefix): the later
    /// value could never be reached, and two services would report under one label. A
    /// router's table is the program's own, as axum's routes are, which panic alike.
    pub fn mount(mut self, prefix: &str, value: T) -> Mounts<T> {
        let prefix = mount_prefix(prefix);
        assert!(
            self.mounts.iter().all(|(mounted, _)| *mounted != prefix),
            "SockJS prefix {prefix:?} mounted twice"
        );
        self.mounts.push((prefix, value));
        self.mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        self
    }

    /// Every value, longest prefix first.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.mounts.iter().map(|(_, value)| value)
    }

    /// Every prefix with its value, longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.mounts
            .iter()
            .map(|(prefix, value)| (prefix.as_str(), value))
    }

    /// The value whose prefix `path` is in, with that prefix: `path` equals it or goes on
    /// with `/`.
    pub fn find(&self, path: &str) -> Option<(&str, &T)> {
        self.mounts.iter().find_map(|(prefix, value)| {
            let rest = path.strip_prefix(prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((prefix.as_str(), value))
        })
    }
}

/// The request with its URI's path relative to `prefix` (`/` for the prefix itself), as a
/// router's `nest_service` hands it on, and the URI it came with as an [`OriginalUri`]
/// extension. `None` if `prefix` does not start the path or the new URI is invalid.
pub fn strip_prefix<B>(mut request: http::Request<B>, prefix: &str) -> Option<http::Request<B>> {
    let original = request.uri().clone();
    let rest = original.path().strip_prefix(prefix)?;
    *request.uri_mut() = crate::peer::unmounted(&original, rest)?;
    request.extensions_mut().insert(OriginalUri(original));
    Some(request)
}

/// Routers such as axum's `nest_service` turn `/echo//` into `/` (they drop the empty
/// segment after the prefix), which would make near-miss paths such as `P//` or `P//xhr`
/// routable. When the router recorded an [`OriginalUri`] that ends with `/` + the path the
/// service was given, this puts the lost `/` back, so the engine sees the real path (and
/// answers 404).
pub fn restore_empty_segment(parts: &mut http::request::Parts) {
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
    uri.path_and_query = PathAndQuery::try_from(path_and_query).ok();
    if let Ok(uri) = Uri::from_parts(uri) {
        parts.uri = uri;
    }
}

/// Why a request body could not be read; [`response`](BodyError::response) is the answer
/// to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit, declared or sent: 413.
    TooLarge,
    /// The body failed to arrive (its stream reported an error): 400.
    Failed,
    /// It did not arrive within the body read timeout: 408, and the connection closes.
    TimedOut,
}

impl BodyError {
    /// The answer to the request.
    pub fn response(self) -> Response<Bytes> {
        match self {
            BodyError::TooLarge => plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large.\n"),
            BodyError::Failed => plain(StatusCode::BAD_REQUEST, "Bad request body.\n"),
            BodyError::TimedOut => {
                let mut response = plain(StatusCode::REQUEST_TIMEOUT, "Request body timeout.\n");
                let close = HeaderValue::from_static("close");
                response.headers_mut().insert(header::CONNECTION, close);
                response
            }
        }
    }
}

/// Reads a whole request body of at most `limit` bytes, checking a `Content-Length` in
/// `headers` first. A body that comes in one chunk (the usual case) is kept as it is,
/// without a copy.
pub async fn read_body<B>(body: B, headers: &HeaderMap, limit: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut body = std::pin::pin!(body);
    let mut first = Bytes::new();
    let mut buf = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| Pin::as_mut(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|error| {
            let error: Box<dyn std::error::Error + Send + Sync> = error.into();
            tracing::debug!(%error, "request body failed");
            BodyError::Failed
        })?;
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        let held = first.len() + buf.len();
        if held.saturating_add(data.remaining()) > limit {
            return Err(BodyError::TooLarge);
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
    Ok(if buf.is_empty() { first } else { buf.freeze() })
}

#[cfg(test)]
mod tests {
    use super::Mounts;

    #[test]
    fn prefixes_are_normalised_and_the_longest_wins() {
        let mounts = Mounts::new()
            .mount("echo/", 1)
            .mount("/echo/deep", 2)
            .mount("/", 3);
        let prefixes: Vec<&str> = mounts.iter().map(|(prefix, _)| prefix).collect();
        assert_eq!(prefixes, ["/echo/deep", "/echo", ""]);
    }

    #[test]
    #[should_panic(expected = "mounted twice")]
    fn a_prefix_mounted_twice_is_refused() {
        let _ = Mounts::new().mount("/echo", 1).mount("echo/", 2);
    }
}
