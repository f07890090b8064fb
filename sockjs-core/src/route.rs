//! URL routing (PROTOCOL.md §2): a request path inside a service to an endpoint.
//!
//! Pure and allocation-free: the parsed route borrows from the path.

use http::Method;

use crate::swar;

/// An endpoint of a SockJS service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `P` or `P/`: the greeting.
    Greeting,
    /// `P/info`.
    Info,
    /// `P/iframe[0-9a-z._-]*.html`.
    Iframe,
    /// `P/websocket`: raw WebSocket, no SockJS framing.
    RawWebSocket,
    /// `P/S/I/<kind>`.
    Session {
        /// The server id `S` (only for load-balancer stickiness).
        server: &'a str,
        /// The session id `I`.
        session: &'a str,
        /// Which session endpoint.
        kind: SessionEndpoint,
    },
}

/// The endpoints under `P/S/I/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEndpoint {
    /// `websocket`.
    WebSocket,
    /// `xhr`: xhr-polling receiver.
    Xhr,
    /// `xhr_streaming`.
    XhrStreaming,
    /// `xhr_send`.
    XhrSend,
    /// `eventsource`.
    EventSource,
    /// `htmlfile`.
    HtmlFile,
    /// `jsonp`: JSONP-polling receiver.
    Jsonp,
    /// `jsonp_send`.
    JsonpSend,
}

impl SessionEndpoint {
    fn from_segment(segment: &str) -> Option<Self> {
        Some(match segment {
            "websocket" => SessionEndpoint::WebSocket,
            "xhr" => SessionEndpoint::Xhr,
            "xhr_streaming" => SessionEndpoint::XhrStreaming,
            "xhr_send" => SessionEndpoint::XhrSend,
            "eventsource" => SessionEndpoint::EventSource,
            "htmlfile" => SessionEndpoint::HtmlFile,
            "jsonp" => SessionEndpoint::Jsonp,
            "jsonp_send" => SessionEndpoint::JsonpSend,
            _ => return None,
        })
    }
}

impl Route<'_> {
    /// The route of a request target's `path`, as it came, in the service at `prefix`:
    /// `None` for a target with no path, outside the prefix, or for a path the service does
    /// not serve.
    pub(crate) fn of_target<'a>(path: &'a str, prefix: &str) -> Option<Route<'a>> {
        // A target with no path (authority form, or `*`: a server such as hyper hands it on
        // as it came) is in no service, not even one mounted at the root, whose greeting
        // its empty path would otherwise name. (A path whose mount prefix a router took may
        // be empty: `in_service` takes that.)
        if !path.starts_with('/') {
            return None;
        }
        Route::in_service(path, prefix)
    }

    /// The route of a path relative to a router's mount (empty for the mount itself) in
    /// the service at `prefix`: `None` outside the prefix (`/echoes` is not in `/echo`) or
    /// for a path the service does not serve.
    pub(crate) fn in_service<'a>(path: &'a str, prefix: &str) -> Option<Route<'a>> {
        let rest = path.strip_prefix(prefix)?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        Route::parse(rest)
    }

    /// Parses a path relative to the service prefix (query string already removed, no
    /// percent-decoding). `None` means 404.
    ///
    /// ```
    /// use sockjs_core::route::{Route, SessionEndpoint};
    /// assert_eq!(Route::parse(""), Some(Route::Greeting));
    /// assert_eq!(
    ///     Route::parse("/000/abc/xhr"),
    ///     Some(Route::Session { server: "000", session: "abc", kind: SessionEndpoint::Xhr })
    /// );
    /// assert_eq!(Route::parse("/a./a/xhr"), None);
    /// ```
    pub fn parse(path: &str) -> Option<Route<'_>> {
        match path {
            "" | "/" => return Some(Route::Greeting),
            "/info" => return Some(Route::Info),
            "/websocket" => return Some(Route::RawWebSocket),
            _ => {}
        }
        let rest = path.strip_prefix('/')?;
        if let Some(name) = rest
            .strip_prefix("iframe")
            .and_then(|r| r.strip_suffix(".html"))
        {
            let ok = name
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'.' | b'_' | b'-'));
            return ok.then_some(Route::Iframe);
        }
        // `server/session/kind`, one pass over each id: this runs for every request.
        let (server, rest) = id_segment(rest)?;
        let (session, kind) = id_segment(rest)?;
        // No endpoint name has a slash: a fourth segment ends here too.
        Some(Route::Session {
            server,
            session,
            kind: SessionEndpoint::from_segment(kind)?,
        })
    }

    /// The methods this endpoint answers, as the `Allow` header of a 405 lists them.
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Route::Greeting | Route::Iframe | Route::RawWebSocket => "GET",
            Route::Info => "GET, OPTIONS",
            Route::Session { kind, .. } => match kind {
                SessionEndpoint::WebSocket
                | SessionEndpoint::EventSource
                | SessionEndpoint::HtmlFile
                | SessionEndpoint::Jsonp => "GET",
                SessionEndpoint::Xhr | SessionEndpoint::XhrStreaming | SessionEndpoint::XhrSend => {
                    "POST, OPTIONS"
                }
                SessionEndpoint::JsonpSend => "POST",
            },
        }
    }

    /// Whether the endpoint answers `method`.
    pub fn allows(&self, method: &Method) -> bool {
        // The same lists as `allowed_methods`, without splitting a string per request.
        let (get, post, options) = (
            *method == Method::GET,
            *method == Method::POST,
            *method == Method::OPTIONS,
        );
        match self {
            Route::Greeting | Route::Iframe | Route::RawWebSocket => get,
            Route::Info => get || options,
            Route::Session { kind, .. } => match kind {
                SessionEndpoint::WebSocket
                | SessionEndpoint::EventSource
                | SessionEndpoint::HtmlFile
                | SessionEndpoint::Jsonp => get,
                SessionEndpoint::Xhr | SessionEndpoint::XhrStreaming | SessionEndpoint::XhrSend => {
                    post || options
                }
                SessionEndpoint::JsonpSend => post,
            },
        }
    }
}

/// The leading segment of `path` if it is a valid id, `[^/.]+` (§2: at least one
/// character, no dot), and what follows its slash; `None` if it is not, or is the last.
fn id_segment(path: &str) -> Option<(&str, &str)> {
    let end = slash_or_dot(path.as_bytes())?;
    if end == 0 || path.as_bytes()[end] == b'.' {
        return None;
    }
    // The byte at `end` is an ASCII slash: both slices split on character boundaries.
    Some((&path[..end], &path[end + 1..]))
}

/// The index of the first `/` or `.` in `bytes`. Session ids are often UUIDs (36 bytes):
/// eight bytes at a time is about a third of the byte-by-byte scan's work, twice per request.
fn slash_or_dot(bytes: &[u8]) -> Option<usize> {
    swar::position(
        bytes,
        0,
        |word| swar::equal(word, b'/') | swar::equal(word, b'.'),
        |b| b == b'/' || b == b'.',
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s2_greeting_paths() {
        assert_eq!(Route::parse(""), Some(Route::Greeting));
        assert_eq!(Route::parse("/"), Some(Route::Greeting));
        for p in ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"] {
            assert_eq!(Route::parse(p), None, "{p}");
        }
    }

    #[test]
    fn s2_iframe_paths() {
        for p in [
            "/iframe.html",
            "/iframe-.html",
            "/iframe-a.html",
            "/iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert_eq!(Route::parse(p), Some(Route::Iframe), "{p}");
        }
        for p in [
            "/iframe.htm",
            "/iframe",
            "/IFRAME.HTML",
            "/IFRAME",
            "/iframe.HTML",
            "/iframe.xml",
            "/iframe-/.html",
            "/iframeXhtml",
        ] {
            assert_eq!(Route::parse(p), None, "{p}");
        }
    }

    #[test]
    fn s2_segment_rule() {
        for id in ["a", "_", "1", "000", "abcdefgh_i-j%20"] {
            let path = format!("/{id}/{id}/xhr");
            assert!(
                matches!(Route::parse(&path), Some(Route::Session { .. })),
                "{path}"
            );
        }
        for p in [
            "//xhr",
            "/a./a/xhr",
            "/a/a./xhr",
            "/././xhr",
            "///xhr",
            "////xhr",
            "/a/a/xhr/",
            "/a/a/unknown",
        ] {
            assert_eq!(Route::parse(p), None, "{p}");
        }
    }

    #[test]
    fn s2_id_scan_finds_the_first_slash_or_dot_anywhere() {
        for len in 0..40 {
            for stop in 0..len {
                for (first, second) in [(b'/', b'.'), (b'.', b'/'), (b'/', b'/'), (b'.', b'.')] {
                    let mut bytes = vec![b'a'; len];
                    bytes[stop] = first;
                    if let Some(b) = bytes.last_mut().filter(|_| stop + 1 < len) {
                        *b = second;
                    }
                    assert_eq!(slash_or_dot(&bytes), Some(stop), "{bytes:?}");
                }
            }
            let mut plain = vec![0x80 | b'/'; len];
            plain.iter_mut().step_by(3).for_each(|b| *b = 0x2e ^ 0x80);
            assert_eq!(slash_or_dot(&plain), None);
        }
    }

    /// §2 as it reads: three segments, the two ids `[^/.]+`, the last an endpoint name.
    fn session_route_as_specified(path: &str) -> Option<(&str, &str, SessionEndpoint)> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let valid = |id: &str| !id.is_empty() && !id.contains('.');
        match parts[..] {
            [server, session, kind] if valid(server) && valid(session) => {
                Some((server, session, SessionEndpoint::from_segment(kind)?))
            }
            _ => None,
        }
    }

    proptest::proptest! {
        #[test]
        fn s2_session_routes_are_exactly_the_segment_rule(
            lead in proptest::sample::select(vec!["/", "", "."]),
            segments in proptest::collection::vec(
                proptest::sample::select(vec![
                    "", "a", "0é", ".", "a.b", "a.", "xhr", "xhr_send", "websocket", "xhr.",
                    // Longer than the eight-byte scan's words, with stops at and off their edges.
                    "0a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d", "01234567.89abcdef", "éééééééé.x",
                    "0123456789abcdef",
                ]),
                0..5,
            )
        ) {
            let path = format!("{lead}{}", segments.join("/"));
            let parsed = match Route::parse(&path) {
                Some(Route::Session { server, session, kind }) => Some((server, session, kind)),
                _ => None,
            };
            proptest::prop_assert_eq!(parsed, session_route_as_specified(&path), "{}", path);
        }
    }

    #[test]
    fn s2_allow_lists() {
        let ws = Route::parse("/a/b/websocket").expect("route");
        assert_eq!(ws.allowed_methods(), "GET");
        assert!(!ws.allows(&Method::POST));
        let xhr = Route::parse("/a/b/xhr_send").expect("route");
        assert_eq!(xhr.allowed_methods(), "POST, OPTIONS");
        assert!(xhr.allows(&Method::OPTIONS));
        assert_eq!(Route::Info.allowed_methods(), "GET, OPTIONS");
    }

    #[test]
    fn s2_allows_is_exactly_the_allow_list() {
        let methods = [
            Method::GET,
            Method::POST,
            Method::OPTIONS,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::from_bytes(b"get").expect("method"),
        ];
        let routes = [
            "/",
            "/info",
            "/websocket",
            "/iframe.html",
            "/a/b/websocket",
            "/a/b/xhr",
            "/a/b/xhr_send",
            "/a/b/xhr_streaming",
            "/a/b/eventsource",
            "/a/b/htmlfile",
            "/a/b/jsonp",
            "/a/b/jsonp_send",
        ];
        for path in routes {
            let route = Route::parse(path).expect("route");
            for method in &methods {
                let listed = route
                    .allowed_methods()
                    .split(", ")
                    .any(|m| m == method.as_str());
                assert_eq!(route.allows(method), listed, "{method} {path}");
            }
        }
    }
}
