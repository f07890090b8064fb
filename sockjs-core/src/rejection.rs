//! What refusing a session before it opens looks like on each transport.

use bytes::Bytes;
use http::StatusCode;

/// An application's refusal of a request that would open a session (see
/// [`Engine::handle_rejected`](crate::Engine::handle_rejected) and the driver's admission
/// hook): an HTTP status and body for the HTTP transports, a close code and reason for the
/// WebSockets, which cannot show a browser an HTTP status.
///
/// By default the body is the status's reason phrase and the close code is `4000` plus the
/// status (`4401` for `401`), in the range SockJS clients hand to the application as it is.
///
/// ```
/// use http::StatusCode;
/// use sockjs_core::Rejection;
///
/// let plain = Rejection::unauthorized();
/// assert_eq!(plain.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(plain.body(), "Unauthorized\n");
/// assert_eq!((plain.close_code(), plain.close_reason()), (4401, "Unauthorized"));
///
/// let custom = Rejection::new(StatusCode::FORBIDDEN)
///     .with_body("No entry.\n")
///     .with_close(4003, "No entry");
/// assert_eq!((custom.close_code(), custom.close_reason()), (4003, "No entry"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    body: Bytes,
    code: u16,
    reason: Box<str>,
}

impl Rejection {
    /// A rejection with this status (meant to be a 4xx or 5xx one), its reason phrase as
    /// the body and the close reason, and `4000 + status` as the close code (`4000` for a
    /// status below 400).
    ///
    /// An informational status (1xx) is no answer: the request would be left without its
    /// final response (and a `101` would switch protocols no one asked for), so it becomes
    /// `500 Internal Server Error`.
    ///
    /// ```
    /// use http::StatusCode;
    /// use sockjs_core::Rejection;
    ///
    /// let interim = Rejection::new(StatusCode::CONTINUE);
    /// assert_eq!(interim.status(), StatusCode::INTERNAL_SERVER_ERROR);
    /// assert_eq!(interim.close_code(), 4500);
    /// ```
    pub fn new(status: StatusCode) -> Rejection {
        let status = if status.is_informational() {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            status
        };
        let phrase = status.canonical_reason().unwrap_or("Rejected");
        let code = if status.as_u16() >= 400 {
            4000 + status.as_u16() % 1000
        } else {
            4000
        };
        Rejection {
            status,
            body: Bytes::from(format!("{phrase}\n")),
            code,
            reason: phrase.into(),
        }
    }

    /// `401 Unauthorized`, close `4401 "Unauthorized"`: the client did not say who it is.
    pub fn unauthorized() -> Rejection {
        Rejection::new(StatusCode::UNAUTHORIZED)
    }

    /// `403 Forbidden`, close `4403 "Forbidden"`: the client may not open a session.
    pub fn forbidden() -> Rejection {
        Rejection::new(StatusCode::FORBIDDEN)
    }

    /// The same rejection with this body on the HTTP transports (sent as
    /// `text/plain; charset=UTF-8`).
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Rejection {
        self.body = body.into();
        self
    }

    /// The same rejection with this close code and reason on the WebSockets: a SockJS
    /// WebSocket gets `c[code,"reason"]`, a raw WebSocket a close frame with them (a code
    /// a WebSocket may not send becomes `1000`, a reason is cut to 123 bytes there).
    #[must_use]
    pub fn with_close(mut self, code: u16, reason: &str) -> Rejection {
        self.code = code;
        self.reason = reason.into();
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The WebSocket close code.
    pub fn close_code(&self) -> u16 {
        self.code
    }

    /// The WebSocket close reason.
    pub fn close_reason(&self) -> &str {
        &self.reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_the_status() {
        assert_eq!(Rejection::forbidden().close_code(), 4403);
        assert_eq!(
            Rejection::new(StatusCode::SERVICE_UNAVAILABLE).close_code(),
            4503
        );
        assert_eq!(Rejection::new(StatusCode::OK).close_code(), 4000);
        assert_eq!(
            Rejection::new(StatusCode::from_u16(999).expect("status")).close_code(),
            4999
        );
    }
}
