//! The `JSESSIONID` cookie (PROTOCOL.md §3.4): off, the protocol's echo with the attributes
//! a deployment needs, or a cookie of the application's own making.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;

/// A function that computes a response's whole `Set-Cookie` value from the request
/// ([`Jsessionid::Custom`]); `None` sends no cookie on that response, as does a panic in
/// it. Like an origin predicate ([`OriginPolicy::Predicate`](crate::OriginPolicy)), it
/// runs under the engine's lock: keep it quick, and do not call into the service from it.
pub type CookieFn = Arc<dyn Fn(&http::request::Parts) -> Option<HeaderValue> + Send + Sync>;

/// The cookie a service sets for load-balancer stickiness (PROTOCOL.md §3.4), on its
/// session endpoints (receivers, senders, the xhr preflights) and never on `/info`, the
/// greeting or the iframe page. Any setting but [`Jsessionid::Off`] makes `/info` say
/// `"cookie_needed":true`.
///
/// ```
/// use std::time::Duration;
/// use sockjs_core::{CookieAttributes, Jsessionid, Options, SameSite};
/// // The protocol's cookie, `JSESSIONID=<client's value or dummy>; path=/`:
/// let plain = Options { jsessionid: Jsessionid::echo(), ..Default::default() };
/// // A sticky cookie that survives cross-site use, under the load balancer's name:
/// let attributes = CookieAttributes::new()
///     .with_name("SERVERID")?
///     .with_same_site(SameSite::None) // writes `Secure` too, as browsers require
///     .with_http_only(true)
///     .with_max_age(Duration::from_secs(3600));
/// let sticky = Options { jsessionid: Jsessionid::Echo(attributes), ..Default::default() };
/// assert!(plain.validate().is_ok() && sticky.validate().is_ok());
/// # Ok::<(), sockjs_core::CookieError>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Jsessionid {
    /// No cookie (the default). [`SessionBinding::Cookie`](crate::SessionBinding::Cookie)
    /// still sets the protocol's cookie, as [`CookieAttributes::default`] describes it.
    #[default]
    Off,
    /// The protocol's cookie: the value of the request's own cookie of that name, or
    /// `dummy` without one, with these name and attributes. The defaults give exactly
    /// `JSESSIONID=<v>; path=/`.
    Echo(CookieAttributes),
    /// The application's cookie: the function gets each session endpoint's request head
    /// and returns the whole `Set-Cookie` value (`None`: no cookie on that response). It
    /// runs inside the engine, so it must be quick and must not block. It cannot be
    /// combined with [`SessionBinding::Cookie`](crate::SessionBinding::Cookie), which needs
    /// the engine's own cookie ([`OptionsError::CookieBinding`](crate::OptionsError)).
    Custom(CookieFn),
}

impl Jsessionid {
    /// The protocol's cookie with the default attributes: `JSESSIONID=<v>; path=/`.
    pub fn echo() -> Jsessionid {
        Jsessionid::Echo(CookieAttributes::default())
    }

    /// A cookie of the application's making, computed per request (see
    /// [`Jsessionid::Custom`]).
    ///
    /// ```
    /// use http::HeaderValue;
    /// use sockjs_core::Jsessionid;
    /// let jsessionid = Jsessionid::custom(|request| {
    ///     let node = request.headers.get("x-node")?.to_str().ok()?;
    ///     HeaderValue::from_str(&format!("NODE={node}; Path=/; Secure; SameSite=None")).ok()
    /// });
    /// assert!(jsessionid.is_on());
    /// ```
    pub fn custom(
        f: impl Fn(&http::request::Parts) -> Option<HeaderValue> + Send + Sync + 'static,
    ) -> Jsessionid {
        Jsessionid::Custom(Arc::new(f))
    }

    /// Whether a cookie is set (anything but [`Jsessionid::Off`]).
    pub fn is_on(&self) -> bool {
        !matches!(self, Jsessionid::Off)
    }
}

/// `true` is [`Jsessionid::echo`] (the protocol's cookie), `false` is [`Jsessionid::Off`]:
/// `jsessionid: true.into()` reads as the protocol's `cookie_needed` switch.
impl From<bool> for Jsessionid {
    fn from(on: bool) -> Jsessionid {
        if on {
            Jsessionid::echo()
        } else {
            Jsessionid::Off
        }
    }
}

impl fmt::Debug for Jsessionid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jsessionid::Off => f.write_str("Off"),
            Jsessionid::Echo(attributes) => f.debug_tuple("Echo").field(attributes).finish(),
            Jsessionid::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SameSite {
    /// `SameSite=Strict`: sent only on same-site requests.
    Strict,
    /// `SameSite=Lax`: also sent on top-level cross-site navigations.
    Lax,
    /// `SameSite=None`: sent on cross-site requests too (a SockJS client on another site
    /// behind a sticky load balancer). Written as `SameSite=None; Secure`: browsers drop a
    /// `SameSite=None` cookie without `Secure`, so it is not representable here.
    None,
}

/// Why a [`CookieAttributes`] setter refused a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieError {
    /// A cookie name must be a non-empty RFC 6265 token: visible ASCII without separators
    /// (`()<>@,;:\"/[]?={}`) or spaces.
    Name,
    /// A path must start with `/` and hold visible ASCII other than `;`.
    Path,
    /// A domain must be non-empty ASCII letters, digits, `-` and `.` (IDNs in punycode).
    Domain,
}

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CookieError::Name => "a cookie name must be a non-empty token",
            CookieError::Path => "a cookie path must start with '/' and hold no ';' or controls",
            CookieError::Domain => "a cookie domain must be ASCII letters, digits, '-' and '.'",
        })
    }
}

impl std::error::Error for CookieError {}

/// The name and attributes of the cookie of [`Jsessionid::Echo`], checked when set so that
/// every value makes a valid `Set-Cookie` header.
///
/// The default is the protocol's: name `JSESSIONID`, `path=/`, no `Domain` (the host
/// only), no `Max-Age` (a session cookie), no `Secure`, no `HttpOnly`, no `SameSite` (the
/// browser's default, `Lax` in current browsers). Attributes are written in this order:
/// `NAME=value; path=P; Domain=D; Max-Age=N; Secure; HttpOnly; SameSite=S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttributes {
    name: Cow<'static, str>,
    path: Cow<'static, str>,
    domain: Option<Box<str>>,
    max_age: Option<u64>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
}

impl Default for CookieAttributes {
    fn default() -> Self {
        CookieAttributes::DEFAULT
    }
}

impl CookieAttributes {
    /// The protocol's cookie: `JSESSIONID=<v>; path=/`.
    pub(crate) const DEFAULT: CookieAttributes = CookieAttributes {
        name: Cow::Borrowed("JSESSIONID"),
        path: Cow::Borrowed("/"),
        domain: None,
        max_age: None,
        secure: false,
        http_only: false,
        same_site: None,
    };

    /// The cookie of [`SessionBinding::Cookie`](crate::SessionBinding::Cookie) when
    /// `jsessionid` sets none: the protocol's, `HttpOnly`, since its value is the token
    /// the session is bound to and page scripts have no use for it.
    pub(crate) const BINDING: CookieAttributes = CookieAttributes {
        http_only: true,
        ..CookieAttributes::DEFAULT
    };

    /// The protocol's cookie, as [`CookieAttributes::default`].
    pub fn new() -> Self {
        CookieAttributes::DEFAULT
    }

    /// The cookie's name (default `JSESSIONID`), e.g. the one a load balancer is set to
    /// stick on. The request's cookie of this name is the one echoed, and the one
    /// [`SessionBinding::Cookie`](crate::SessionBinding::Cookie) binds to.
    pub fn with_name(mut self, name: &str) -> Result<Self, CookieError> {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !token {
            return Err(CookieError::Name);
        }
        self.name = Cow::Owned(name.to_owned());
        Ok(self)
    }

    /// The `path` attribute (default `/`).
    pub fn with_path(mut self, path: &str) -> Result<Self, CookieError> {
        let ok = path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic() && b != b';');
        if !ok {
            return Err(CookieError::Path);
        }
        self.path = Cow::Owned(path.to_owned());
        Ok(self)
    }

    /// The `Domain` attribute (default none: the cookie goes to the exact host only).
    pub fn with_domain(mut self, domain: &str) -> Result<Self, CookieError> {
        let ok = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(CookieError::Domain);
        }
        self.domain = Some(domain.into());
        Ok(self)
    }

    /// The `Max-Age` attribute in whole seconds, rounded down (default none: the cookie
    /// lasts as long as the browser session).
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age.as_secs());
        self
    }

    /// The `Secure` attribute (default off; [`SameSite::None`] writes it anyway).
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `HttpOnly` attribute (default off). SockJS clients never read the cookie, so it
    /// can be on.
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// The `SameSite` attribute (default none).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = Some(same_site);
        self
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether browsers keep the cookie its name's prefix asks for (RFC 6265bis's cookie
    /// name prefixes, matched without regard to case): `__Secure-` wants `Secure`;
    /// `__Host-` wants `Secure`, `path=/` and no `Domain`. A browser drops a cookie that
    /// breaks its prefix's rule, and every request after the first would then come
    /// without it.
    pub(crate) fn keeps_its_prefix(&self) -> bool {
        let prefixed = |prefix: &str| {
            self.name
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        if prefixed("__Host-") {
            self.writes_secure() && self.path == "/" && self.domain.is_none()
        } else if prefixed("__Secure-") {
            self.writes_secure()
        } else {
            true
        }
    }

    /// Whether the cookie is written with `Secure`: asked for, or implied by
    /// `SameSite=None`, which browsers take only with it.
    fn writes_secure(&self) -> bool {
        self.secure || self.same_site == Some(SameSite::None)
    }

    /// The `Set-Cookie` value for a cookie with this value, or `None` if the value cannot
    /// go into a header.
    ///
    /// ```
    /// use sockjs_core::{CookieAttributes, SameSite};
    /// let default = CookieAttributes::default();
    /// assert_eq!(default.set_cookie(b"dummy").unwrap(), "JSESSIONID=dummy; path=/");
    /// let cross_site = default.with_same_site(SameSite::None);
    /// assert_eq!(
    ///     cross_site.set_cookie(b"abc").unwrap(),
    ///     "JSESSIONID=abc; path=/; Secure; SameSite=None"
    /// );
    /// ```
    pub fn set_cookie(&self, value: &[u8]) -> Option<HeaderValue> {
        let mut out = Vec::with_capacity(self.name.len() + value.len() + self.path.len() + 16);
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value);
        out.extend_from_slice(b"; path=");
        out.extend_from_slice(self.path.as_bytes());
        if let Some(domain) = &self.domain {
            out.extend_from_slice(b"; Domain=");
            out.extend_from_slice(domain.as_bytes());
        }
        if let Some(max_age) = self.max_age {
            out.extend_from_slice(format!("; Max-Age={max_age}").as_bytes());
        }
        if self.writes_secure() {
            out.extend_from_slice(b"; Secure");
        }
        if self.http_only {
            out.extend_from_slice(b"; HttpOnly");
        }
        if let Some(same_site) = self.same_site {
            out.extend_from_slice(match same_site {
                SameSite::Strict => b"; SameSite=Strict".as_slice(),
                SameSite::Lax => b"; SameSite=Lax",
                SameSite::None => b"; SameSite=None",
            });
        }
        HeaderValue::from_bytes(&out).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_4_default_attributes_are_the_protocols() {
        let value = CookieAttributes::default().set_cookie(b"dummy");
        assert_eq!(value.expect("valid"), "JSESSIONID=dummy; path=/");
        assert!(!Jsessionid::default().is_on());
        assert!(Jsessionid::from(true).is_on() && !Jsessionid::from(false).is_on());
    }

    #[test]
    fn s3_4_every_attribute_in_order() {
        let all = CookieAttributes::new()
            .with_name("SRV")
            .and_then(|a| a.with_path("/sockjs"))
            .and_then(|a| a.with_domain("example.com"))
            .expect("valid")
            .with_max_age(Duration::from_millis(90_500))
            .with_secure(true)
            .with_http_only(true)
            .with_same_site(SameSite::Strict);
        assert_eq!(
            all.set_cookie(b"v").expect("valid"),
            "SRV=v; path=/sockjs; Domain=example.com; Max-Age=90; Secure; HttpOnly; SameSite=Strict"
        );
        let lax = CookieAttributes::new().with_same_site(SameSite::Lax);
        assert_eq!(
            lax.set_cookie(b"v").expect("valid"),
            "JSESSIONID=v; path=/; SameSite=Lax"
        );
        let none = CookieAttributes::new()
            .with_secure(true)
            .with_same_site(SameSite::None);
        assert_eq!(
            none.set_cookie(b"v").expect("valid"),
            "JSESSIONID=v; path=/; Secure; SameSite=None",
            "Secure once"
        );
    }

    /// `SameSite=None` writes `Secure` whatever `with_secure` says, so a prefixed name that
    /// asks for `Secure` keeps its prefix with it.
    #[test]
    fn s3_4_same_site_none_counts_as_secure_for_the_prefixes() {
        for name in ["__Secure-sid", "__Host-sid"] {
            let plain = CookieAttributes::new().with_name(name).expect("valid");
            assert!(!plain.keeps_its_prefix(), "{name}");
            let none = plain.clone().with_same_site(SameSite::None);
            assert!(none.keeps_its_prefix(), "{name}");
            assert!(
                none.set_cookie(b"v")
                    .expect("valid")
                    .to_str()
                    .is_ok_and(|v| v.contains("; Secure"))
            );
        }
    }

    #[test]
    fn s3_4_attributes_that_would_break_the_header_are_refused() {
        let a = CookieAttributes::new();
        for name in ["", "a b", "a;b", "a=b", "é", "a\r\n"] {
            assert_eq!(
                a.clone().with_name(name),
                Err(CookieError::Name),
                "{name:?}"
            );
        }
        for path in ["", "x", "/a;b", "/a b", "/\n"] {
            assert_eq!(
                a.clone().with_path(path),
                Err(CookieError::Path),
                "{path:?}"
            );
        }
        for domain in ["", "a;b", "a b", "ex\u{e4}mple.com"] {
            assert_eq!(
                a.clone().with_domain(domain),
                Err(CookieError::Domain),
                "{domain:?}"
            );
        }
        assert!(a.set_cookie(b"a\nb").is_none());
    }
}
