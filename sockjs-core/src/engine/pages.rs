//! The static endpoints: greeting, `/info`, the iframe page and CORS preflights.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use super::Engine;
use crate::output::RequestId;
use crate::pages::GREETING;
use crate::response::{APPLICATION_JSON, Headers, RequestHeaders, TEXT_HTML, TEXT_PLAIN, plain};
use crate::transport::Transport;

impl Engine {
    pub(super) fn greeting(&mut self, id: RequestId, request_headers: &RequestHeaders) {
        let response = Headers::new(self.shared.options.protocol, request_headers)
            .content_type(TEXT_PLAIN)
            .response(StatusCode::OK, Bytes::from_static(GREETING.as_bytes()));
        self.respond(id, response);
    }

    /// The CORS preflight of the xhr endpoints.
    pub(super) fn preflight(
        &mut self,
        id: RequestId,
        parts: &http::request::Parts,
        request_headers: &RequestHeaders,
    ) {
        let mut headers = Headers::new(self.shared.options.protocol, request_headers).cors();
        // Only the JSESSIONID option (§3.4) puts the cookie on preflights: a cookie-bound
        // session's fresh value never reaches them.
        if self.shared.options.jsessionid.is_on() {
            headers = self.shared.cookie(headers, parts);
        }
        let response = headers
            .preflight("OPTIONS, POST", self.wall_clock())
            .response(StatusCode::NO_CONTENT, Bytes::new());
        self.respond(id, response);
    }

    pub(super) fn info(
        &mut self,
        id: RequestId,
        method: &Method,
        request_headers: &RequestHeaders,
    ) {
        let options = &self.shared.options;
        let headers = Headers::new(options.protocol, request_headers).cors();
        if method == Method::OPTIONS {
            let response = headers
                .preflight("OPTIONS, GET", self.wall_clock())
                .response(StatusCode::NO_CONTENT, Bytes::new());
            return self.respond(id, response);
        }
        let websocket = options.transports.contains(Transport::WebSocket);
        let cookie_needed = self.shared.cookie_needed();
        let headers = headers.content_type(APPLICATION_JSON).no_cache();
        let body = format!(
            "{{\"websocket\":{websocket},\"origins\":[\"*:*\"],\"cookie_needed\":{cookie_needed},\"entropy\":{}}}",
            self.entropy()
        );
        let response = headers.response(StatusCode::OK, Bytes::from(body));
        self.respond(id, response);
    }

    pub(super) fn iframe(&mut self, id: RequestId, request: &HeaderMap) {
        if none_match_names(request, self.etag.as_bytes()) {
            let mut response = plain(StatusCode::NOT_MODIFIED, "");
            response
                .headers_mut()
                .insert(header::ETAG, self.etag.clone());
            return self.respond(id, response);
        }
        let none = RequestHeaders::default();
        let response = Headers::new(self.shared.options.protocol, &none)
            .content_type(TEXT_HTML)
            .long_cache(self.wall_clock())
            .insert(header::ETAG, self.etag.clone())
            .response(StatusCode::OK, self.iframe.clone());
        self.respond(id, response);
    }
}

/// Whether `If-None-Match` names `etag` (RFC 9110 §13.1.2): over all its lines, a list of
/// entity tags compared weakly (`W/` ignored), or `*`.
fn none_match_names(request: &HeaderMap, etag: &[u8]) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .map(|tag| tag.trim_ascii())
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag)
}
