//! Response headers shared by the endpoints (PROTOCOL.md §3): content types, caching
//! classes, CORS and the JSESSIONID cookie.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use crate::cookie::CookieAttributes;
use crate::options::ProtocolVersion;

// Content types as constants: `from_static` checks its bytes when it runs, so it runs once,
// here, at compile time, not once per response.
/// `text/plain; charset=UTF-8`.
pub(crate) const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=UTF-8");
/// `application/json; charset=UTF-8`.
pub(crate) const APPLICATION_JSON: HeaderValue =
    HeaderValue::from_static("application/json; charset=UTF-8");
/// `text/html; charset=UTF-8`.
pub(crate) const TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html; charset=UTF-8");
/// `application/javascript; charset=UTF-8`.
pub(crate) const APPLICATION_JAVASCRIPT: HeaderValue =
    HeaderValue::from_static("application/javascript; charset=UTF-8");
/// `text/event-stream`.
pub(crate) const TEXT_EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
/// `text/event-stream; charset=UTF-8` (protocol 0.3.3).
pub(crate) const TEXT_EVENT_STREAM_UTF8: HeaderValue =
    HeaderValue::from_static("text/event-stream; charset=UTF-8");
const NO_CACHE: HeaderValue =
    HeaderValue::from_static("no-store, no-cache, no-transform, must-revalidate, max-age=0");
const NO_CACHE_0_3_3: HeaderValue =
    HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0");
const LONG_CACHE: HeaderValue = HeaderValue::from_static("public, max-age=31536000");
const ONE_YEAR: Duration = Duration::from_secs(31_536_000);

/// What the request asked of CORS and cookies, extracted once per request.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestHeaders {
    pub origin: Option<HeaderValue>,
    pub request_headers: Option<HeaderValue>,
    /// The value of the request's session cookie (`JSESSIONID`, or the configured name).
    pub jsessionid: Option<HeaderValue>,
}

impl RequestHeaders {
    /// Reads the request's CORS headers and its cookie named `cookie_name`, if the options
    /// read a cookie at all (`None`: not looked for).
    pub fn from_map(headers: &HeaderMap, cookie_name: Option<&str>) -> Self {
        RequestHeaders {
            origin: headers.get(header::ORIGIN).cloned(),
            request_headers: headers
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .filter(|v| !v.is_empty())
                .cloned(),
            jsessionid: cookie_name.and_then(|name| cookie(headers, name)),
        }
    }
}

/// The value of the request's cookie named `name`, if any (empty counts as absent).
fn cookie(headers: &HeaderMap, name: &str) -> Option<HeaderValue> {
    cookie_value(headers, name).and_then(|value| HeaderValue::from_bytes(value).ok())
}

/// The raw value of the request's first non-empty cookie named `name`.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get_all(header::COOKIE).iter().find_map(|v| {
        v.as_bytes().split(|&b| b == b';').find_map(|pair| {
            let value = pair
                .trim_ascii()
                .strip_prefix(name.as_bytes())?
                .strip_prefix(b"=")?;
            (!value.is_empty()).then_some(value)
        })
    })
}

/// Builds the headers of one response.
pub(crate) struct Headers<'a> {
    map: HeaderMap,
    protocol: ProtocolVersion,
    request: &'a RequestHeaders,
}

impl<'a> Headers<'a> {
    pub fn new(protocol: ProtocolVersion, request: &'a RequestHeaders) -> Self {
        Headers {
            map: HeaderMap::new(),
            protocol,
            request,
        }
    }

    pub fn content_type(mut self, value: HeaderValue) -> Self {
        self.map.insert(header::CONTENT_TYPE, value);
        self
    }

    pub fn no_cache(mut self) -> Self {
        let value = match self.protocol {
            ProtocolVersion::Current => NO_CACHE,
            ProtocolVersion::V0_3_3 => NO_CACHE_0_3_3,
        };
        self.map.insert(header::CACHE_CONTROL, value);
        self
    }

    pub fn long_cache(mut self, wall_clock: SystemTime) -> Self {
        self.map.insert(header::CACHE_CONTROL, LONG_CACHE);
        // httpdate only formats years 1970..=9999; a wall clock outside must not panic.
        let latest = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        let expires = wall_clock
            .checked_add(ONE_YEAR)
            .unwrap_or(latest)
            .clamp(SystemTime::UNIX_EPOCH, latest);
        let expires = httpdate::fmt_http_date(expires);
        if let Ok(value) = HeaderValue::from_str(&expires) {
            self.map.insert(header::EXPIRES, value);
        }
        self
    }

    /// §3.3: echo the Origin with credentials, or `*` without; echo requested headers.
    pub fn cors(mut self) -> Self {
        let origin = self
            .request
            .origin
            .as_ref()
            .filter(|o| !(self.protocol == ProtocolVersion::V0_3_3 && o.as_bytes() == b"null"));
        match origin {
            Some(origin) => {
                self.map
                    .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                self.map.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            None => {
                self.map.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
        }
        if let Some(requested) = &self.request.request_headers {
            self.map
                .insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        self.map
            .insert(header::VARY, HeaderValue::from_static("Origin"));
        self
    }

    /// §3.4: `JSESSIONID=<request's value or dummy>; path=/` (with these name and
    /// attributes), when the cookie is on.
    pub fn cookie(self, attributes: Option<&CookieAttributes>) -> Self {
        let value = attributes.and_then(|attributes| {
            let value = self.request.jsessionid.as_ref();
            attributes.set_cookie(value.map_or(b"dummy".as_slice(), HeaderValue::as_bytes))
        });
        self.set_cookie(value)
    }

    /// The cookie of a session bound by it: the request's value echoed with these name and
    /// attributes; nothing if the request has none (a bound session's token is the
    /// engine's, never `dummy`).
    pub fn bound_cookie(self, attributes: &CookieAttributes) -> Self {
        let value = self.request.jsessionid.as_ref();
        let value = value.and_then(|value| attributes.set_cookie(value.as_bytes()));
        self.set_cookie(value)
    }

    /// A `Set-Cookie` of the application's making, if any.
    pub fn set_cookie(mut self, value: Option<HeaderValue>) -> Self {
        if let Some(value) = value {
            self.map.insert(header::SET_COOKIE, value);
        }
        self
    }

    /// Preflight extras (§3.3): max age and the allowed methods.
    pub fn preflight(mut self, methods: &'static str, wall_clock: SystemTime) -> Self {
        self.map.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(methods),
        );
        self.map.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("31536000"),
        );
        self.long_cache(wall_clock)
    }

    pub fn insert(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.map.insert(name, value);
        self
    }

    pub fn response<B>(self, status: StatusCode, body: B) -> Response<B> {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = self.map;
        response
    }
}

/// A response with only a status, optional plain-text body and no other headers.
pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    if !body.is_empty() {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, TEXT_PLAIN);
    }
    response
}

/// The answer to a path nothing serves: the engine's inside a service, and the adapters'
/// outside every service (through the driver's `web::not_found`).
pub(crate) fn not_found() -> Response<Bytes> {
    plain(StatusCode::NOT_FOUND, "404 Error: Page not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&str, &str)]) -> RequestHeaders {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        RequestHeaders::from_map(&map, Some("JSESSIONID"))
    }

    #[test]
    fn s3_4_cookie_echoes_client_value_or_dummy() {
        let req = request(&[("cookie", "a=1; JSESSIONID=abcdef; b=2")]);
        let on = Some(&CookieAttributes::DEFAULT);
        let r = Headers::new(ProtocolVersion::Current, &req)
            .cookie(on)
            .response(StatusCode::OK, ());
        assert_eq!(r.headers()["set-cookie"], "JSESSIONID=abcdef; path=/");
        let none = request(&[]);
        let r = Headers::new(ProtocolVersion::Current, &none)
            .cookie(on)
            .response(StatusCode::OK, ());
        assert_eq!(r.headers()["set-cookie"], "JSESSIONID=dummy; path=/");
        let r = Headers::new(ProtocolVersion::Current, &none)
            .cookie(None)
            .response(StatusCode::OK, ());
        assert!(r.headers().get("set-cookie").is_none());
    }

    #[test]
    fn s3_4_cookie_of_another_name_is_read_by_that_name() {
        let mut map = HeaderMap::new();
        map.insert(
            header::COOKIE,
            HeaderValue::from_static("JSESSIONIDX=no; SRV=yes; JSESSIONID=j"),
        );
        let srv = RequestHeaders::from_map(&map, Some("SRV"));
        assert_eq!(
            srv.jsessionid.as_ref().map(HeaderValue::as_bytes),
            Some(&b"yes"[..])
        );
        let j = RequestHeaders::from_map(&map, Some("JSESSIONID"));
        assert_eq!(
            j.jsessionid.as_ref().map(HeaderValue::as_bytes),
            Some(&b"j"[..])
        );
        assert!(
            RequestHeaders::from_map(&map, Some("S"))
                .jsessionid
                .is_none()
        );
        // Options that read no cookie do not look for one.
        assert!(RequestHeaders::from_map(&map, None).jsessionid.is_none());
    }

    #[test]
    fn s3_3_cors_null_origin_by_version() {
        let req = request(&[("origin", "null"), ("access-control-request-headers", "")]);
        let r = Headers::new(ProtocolVersion::Current, &req)
            .cors()
            .response(StatusCode::OK, ());
        assert_eq!(r.headers()["access-control-allow-origin"], "null");
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
        assert!(r.headers().get("access-control-allow-headers").is_none());
        let r = Headers::new(ProtocolVersion::V0_3_3, &req)
            .cors()
            .response(StatusCode::OK, ());
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert!(
            r.headers()
                .get("access-control-allow-credentials")
                .is_none()
        );
    }
}
