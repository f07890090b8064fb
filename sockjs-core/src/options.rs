//! Engine options: every knob, with the protocol's defaults and explicit bounds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::cookie::Jsessionid;
use crate::deflate::DeflateOptions;
use crate::transport::Transports;

/// [`Options::max_request_body`]'s default, 256 KiB; also the body bound of a standalone
/// server's fallback while no service is mounted.
pub(crate) const DEFAULT_MAX_REQUEST_BODY: usize = 256 * 1024;

/// The client library URL the iframe page loads by default (sockjs-node's default).
pub const DEFAULT_SOCKJS_URL: &str =
    "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js";

/// Which version of the protocol suite to follow where the two disagree (PROTOCOL.md §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// The current suite (default).
    #[default]
    Current,
    /// The 0.3.3 suite: NO-CACHE without `no-transform`, `Origin: null` treated as no
    /// origin, `text/event-stream; charset=UTF-8`, the old iframe layout, jsonp without the
    /// `/**/` prefix, and WebSocket versions 7 and 8 accepted.
    V0_3_3,
}

/// The function of [`OriginPolicy::Predicate`]: the `Origin` value and the request head.
pub type OriginFn = Arc<dyn Fn(&str, &http::request::Parts) -> bool + Send + Sync>;

/// Which origins may use the service (CORS answers and WebSocket upgrades).
///
/// Requests without an `Origin` header (non-browser clients) are always allowed; a browser
/// request from a refused origin gets `403 Forbidden` (PROTOCOL.md §2). Browsers send
/// `Origin` on CORS requests and WebSocket upgrades (not on JSONP's script loads), so a
/// list of the sites that may use the service is what stops other sites from opening
/// sessions that carry your users' cookies (see SECURITY.md); checking who the client is
/// belongs to an admission hook (the driver's `Admission`).
///
/// ```
/// use sockjs_core::OriginPolicy;
///
/// // Exact origins.
/// let list = OriginPolicy::list(["https://example.com", "https://www.example.com"]);
/// // Any subdomain, and partners that present their key in a header.
/// let predicate = OriginPolicy::predicate(|origin, request| {
///     origin.ends_with(".example.com")
///         || request.headers.get("x-partner-key").is_some_and(|key| key == "k1")
/// });
/// let head = http::Request::get("/echo/info").body(())?.into_parts().0;
/// assert!(list.allows("https://example.com", &head));
/// assert!(predicate.allows("https://app.example.com", &head));
/// assert!(!predicate.allows("https://partner.test", &head));
/// # Ok::<(), http::Error>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum OriginPolicy {
    /// Any origin (the protocol's default, `"origins":["*:*"]`).
    #[default]
    Any,
    /// Only these exact `Origin` values (e.g. `https://example.com`). Listing `null`
    /// lets any site in: a browser sends `Origin: null` from sandboxed frames and data
    /// URLs that any page can create, and such a request gets CORS credentials
    /// (PROTOCOL.md §3.3).
    List(Vec<String>),
    /// A predicate over the `Origin` value and the whole request head (method, URI,
    /// headers with cookies, extensions such as the [`PeerAddr`](crate::PeerAddr)), asked
    /// only for requests that carry an `Origin`. It runs under the engine's lock: keep it
    /// quick, do not call into the service from it (a session count, the metrics or a
    /// send would deadlock on that lock), and leave anything that waits to an
    /// admission hook. A panic in it refuses the request (`403`).
    Predicate(OriginFn),
}

impl OriginPolicy {
    /// [`OriginPolicy::List`] of these origins.
    pub fn list<S: Into<String>>(origins: impl IntoIterator<Item = S>) -> OriginPolicy {
        OriginPolicy::List(origins.into_iter().map(Into::into).collect())
    }

    /// [`OriginPolicy::Predicate`] of this function of the origin and the request head.
    pub fn predicate(
        allows: impl Fn(&str, &http::request::Parts) -> bool + Send + Sync + 'static,
    ) -> OriginPolicy {
        OriginPolicy::Predicate(Arc::new(allows))
    }

    /// Whether `request`, which carries `Origin: origin`, is allowed.
    pub fn allows(&self, origin: &str, request: &http::request::Parts) -> bool {
        match self {
            OriginPolicy::Any => true,
            OriginPolicy::List(list) => list.iter().any(|o| o == origin),
            OriginPolicy::Predicate(f) => application_call(false, || f(origin, request)),
        }
    }
}

/// Calls an application's function that the engine asks mid-request (an origin predicate,
/// a cookie function): a panic in it gives `otherwise`, and the panic goes no further. The
/// request it unwound through would otherwise be left half-handled under the engine's
/// lock, its slot held for good and the engine's state half-changed.
pub(crate) fn application_call<T>(otherwise: T, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(otherwise)
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginPolicy::Any => f.write_str("Any"),
            OriginPolicy::List(list) => f.debug_tuple("List").field(list).finish(),
            OriginPolicy::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// What happens to a session when the client drops a pending receiver's connection
/// (PROTOCOL.md §7.1.6).
///
/// A receiver is pending until the engine has answered it in full: a poll until its
/// frame is queued, a stream until its last chunk is. A connection dropped after that,
/// while the answer is still being written, is no abort: the session goes on as after a
/// receiver that read it (its disconnect delay running), and what the lost write carried
/// is lost with it, as on sockjs-node. A client that did not get it has failed its
/// receiver and ends its side (sockjs-client closes with 1006), and the session then
/// expires after the disconnect delay ([`CloseReason::Timeout`](crate::CloseReason::Timeout)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AbortPolicy {
    /// Close the session at once; the next request opens a new one with `o` (sockjs-node).
    #[default]
    CloseSession,
    /// Keep the session CLOSING with `c[1002,"Connection interrupted"]` until the disconnect
    /// delay passes.
    Interrupt,
    /// Treat it as a normal detach: the session lives on and the disconnect delay starts.
    /// Frames written to the dropped request are lost.
    Detach,
}

/// Whether a session only answers the client that created it, so that a guessed or leaked
/// session id cannot be read or written from elsewhere (other clients get 404, as for an
/// unknown session). WebSocket sessions are bound to their socket anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SessionBinding {
    /// No binding: anyone who knows the id may use the session (the protocol's behaviour).
    #[default]
    None,
    /// Bound to the `JSESSIONID` cookie: a session created without one gets a fresh random
    /// value (instead of `dummy`), and every later request must carry it. The value is 128
    /// bits from a cryptographic generator (ChaCha12) that the adapters seed from the
    /// system's random source ([`Engine::with_secret`](crate::Engine::with_secret): four
    /// draws of std's randomly keyed hasher, 128 bits of the system's randomness),
    /// apart from anything else the server hands out; `dummy` counts as no cookie (a
    /// session is never bound to it, and a bound service never sets it). Turns the cookie
    /// on for the session endpoints (and `cookie_needed` in `/info`), with the name and
    /// attributes of [`Jsessionid::Echo`] when that is set, the protocol's and `HttpOnly`
    /// otherwise (`JSESSIONID=<token>; path=/; HttpOnly`: the token is a credential, and
    /// no SockJS client reads the cookie from a script); it cannot be combined with
    /// [`Jsessionid::Custom`]. Over HTTPS, set `Echo` with `Secure` (and `HttpOnly`) too,
    /// so that the token never travels in the clear.
    ///
    /// A session created by a request that carries the cookie binds to the client's value,
    /// so that a browser's tabs share one cookie and a cluster's nodes accept each other's.
    /// A cookie planted in the browser beforehand (by a sibling subdomain, or over plain
    /// HTTP) therefore binds too; over HTTPS, a `__Host-` name
    /// ([`CookieAttributes::with_name`](crate::CookieAttributes::with_name), with `Secure`,
    /// the default `path=/` and no `Domain`, which [`Options::validate`] requires of it)
    /// is one browsers take only from the host itself over a secure connection (any of its
    /// ports, and `http://localhost`), never from a sibling subdomain or plain HTTP.
    Cookie,
    /// Bound to the client's IP address: the peer's, as the adapter reports it in the
    /// [`PeerAddr`] request extension, or, when the peer is one of the
    /// [`Options::trusted_proxies`], the client those proxies name in their forwarding
    /// header ([`Options::forwarding_header`]). A request from another address gets `404`.
    /// Behind a proxy that is not trusted, every client shares the proxy's address. A
    /// request without a peer address (an adapter that gives none, such as axum served
    /// without connect info) binds to no one: it gets `404` on every session endpoint but
    /// WebSockets, rather than sharing one "unknown" address with every such request.
    ///
    /// [`PeerAddr`]: crate::PeerAddr
    PeerIp,
}

/// WebSocket dead-peer detection ([`Options::websocket_ping`]): the engine pings a
/// WebSocket whose peer has been silent for `interval` and closes the session when the
/// peer stays silent for `timeout` more.
///
/// Any frame from the peer counts as an answer: a pong, a ping or a message. A peer that
/// sends nothing at all is closed `interval + timeout` after its last frame (or after the
/// handshake), with close code [`PingOptions::CLOSE_CODE`] and reason
/// [`PingOptions::CLOSE_REASON`] (no `c` frame, as sockjs-node), and the application sees
/// [`CloseReason::PeerUnresponsive`](crate::CloseReason::PeerUnresponsive). Hixie-76 has
/// no ping frame: its sockets are never probed (their SockJS heartbeat is the `h` frame).
///
/// The ping is queued behind what the socket has still to write, so a peer that reads too
/// slowly to get it within `timeout` is closed the same way.
///
/// The default is sockjs-node's: a ping after 25 s, 10 s to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingOptions {
    /// Silence from the peer after which a ping goes out. Default 25 s.
    pub interval: Duration,
    /// How long the peer then has to send anything (its pong, normally) before the session
    /// is closed. Default 10 s.
    pub timeout: Duration,
}

impl PingOptions {
    /// The WebSocket close code of a session whose peer did not answer (sockjs-node's).
    pub const CLOSE_CODE: u16 = 3000;
    /// The WebSocket close reason of a session whose peer did not answer (sockjs-node's).
    pub const CLOSE_REASON: &'static str = "No response from heartbeat";
}

impl Default for PingOptions {
    fn default() -> Self {
        PingOptions {
            interval: Duration::from_secs(25),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Engine options. Build them from [`Options::default`] with struct update syntax.
///
/// ```
/// use std::time::Duration;
/// let options = sockjs_core::Options {
///     response_limit: 4096,
///     heartbeat_delay: Some(Duration::from_secs(10)),
///     ..Default::default()
/// };
/// assert!(options.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    /// The service's mount path, e.g. `/echo` (no trailing `/`). Requests outside it get 404.
    /// Empty when the caller already strips the prefix (e.g. axum's `nest_service`).
    pub prefix: String,
    /// Idle time after which a receiver gets a heartbeat: an `h` frame, or a WebSocket ping
    /// on a raw WebSocket (PROTOCOL.md §7.1.3). Default `Some(25 s)`.
    ///
    /// `None` turns heartbeats off (sockjs-go's zero delay): no `h` frame and no heartbeat
    /// ping is ever sent. A held poll then waits until there is something to send (or the
    /// client gives up), a stream ends only at the response limit, and proxies that drop
    /// idle connections will drop idle receivers. [`Options::websocket_ping`] is separate
    /// and still pings when it is on.
    pub heartbeat_delay: Option<Duration>,
    /// Time a session lives without a receiver before it is closed and forgotten.
    /// Default 5 s.
    pub disconnect_delay: Duration,
    /// Bytes of frames (wrapping included, prelude excluded) after which a streaming
    /// response is ended so the client reconnects. Default 128 KiB.
    pub response_limit: usize,
    /// The transports the service offers; the others' endpoints answer 404 (PROTOCOL.md §2)
    /// and `/info` says `"websocket":false` without [`Transport::WebSocket`]. Default
    /// [`Transports::ALL`]. (This replaces the former `websocket` and `raw_websocket`
    /// switches: `websocket: false` is `Transports::ALL.without(Transport::WebSocket)
    /// .without(Transport::RawWebSocket)`.)
    ///
    /// [`Transport::WebSocket`]: crate::Transport::WebSocket
    pub transports: Transports,
    /// Accept hixie-76 WebSocket handshakes (needed behind old proxies and by the protocol
    /// suite's `test_haproxy`, so test servers turn it on). Default off: it is an obsolete,
    /// weaker protocol that no current browser speaks, and the driver must support its
    /// framing ([`crate::wire::hixie76`]).
    pub hixie76: bool,
    /// The `JSESSIONID` cookie for load-balancer stickiness (PROTOCOL.md §3.4): off, the
    /// protocol's echo with chosen name and attributes, or the application's own. Anything
    /// but off makes `/info` say `"cookie_needed":true`. Default [`Jsessionid::Off`].
    pub jsessionid: Jsessionid,
    /// The client library URL the iframe page loads. Must start with `/` or `http` and
    /// contain no `"`, `<`, `>`, CR or LF (it goes into the page as is). Pin it to the exact sockjs-client version your pages use: the
    /// iframe transports refuse to run when the two versions differ.
    pub sockjs_url: String,
    /// Which origins may use the service.
    pub origins: OriginPolicy,
    /// Which suite version to follow where they disagree.
    pub protocol: ProtocolVersion,
    /// What a dropped receiver does to its session.
    pub abort: AbortPolicy,
    /// Whether sessions only answer the client that created them. Default off.
    pub session_binding: SessionBinding,
    /// Largest request body accepted; larger ones get 413. Default 256 KiB. So does a send
    /// whose messages weigh, each its length plus 32 bytes, more than twice this and 32 (a
    /// batch of tiny messages weighs up to 16.5 times its bytes): nothing of it is delivered.
    pub max_request_body: usize,
    /// Largest WebSocket message accepted (enforced by adapters; the engine closes the
    /// socket with 1009 when told of one). Default 256 KiB. The engine also closes with 1009
    /// a SockJS message whose messages weigh, each its length plus 32 bytes, more than twice
    /// this and 32, delivering nothing of it.
    pub max_message_size: usize,
    /// Most escaped message bytes queued for one session while no receiver takes them.
    /// A send that would exceed it is refused with [`SendError::QueueFull`] and nothing is
    /// queued. Default 1 MiB.
    ///
    /// [`SendError::QueueFull`]: crate::SendError::QueueFull
    pub max_queued_bytes: usize,
    /// Most sessions alive at once; beyond it new sessions get `503 Service Unavailable`
    /// with the body `Too many sessions.`. Default 100 000.
    ///
    /// A WebSocket upgrade past it gets that `503` too (a malformed one its `400` first,
    /// PROTOCOL.md §9.1). An [`Engine`](crate::Engine) counts its own sessions; a
    /// `driver::Service` counts over all its shards (a bound for the service, not for each
    /// shard), and answers the same.
    pub max_sessions: usize,
    /// Proxies (load balancers, reverse proxies) whose forwarding header is believed: when
    /// a request comes from one of these addresses, the client's address is read from
    /// [`forwarding_header`](Options::forwarding_header), hop by hop, as far as the hops
    /// are trusted. It is what `Session::client_addr` reports and what
    /// [`SessionBinding::PeerIp`] binds to. Default empty: the socket's peer is the client,
    /// whatever the headers say.
    ///
    /// List the proxies' own addresses, or ranges that hold nothing but proxies: a client
    /// whose address is in a trusted range is taken for a proxy, and what it writes into
    /// the header is believed (a range such as `10.0.0.0/8` that also holds other
    /// machines, pods or VPN users lets each of them name any address it likes).
    ///
    /// ```
    /// let options = sockjs_core::Options {
    ///     trusted_proxies: vec!["127.0.0.1".parse()?, "10.0.0.2".parse()?, "10.0.0.3".parse()?],
    ///     ..Default::default()
    /// };
    /// # Ok::<(), sockjs_core::IpRangeError>(())
    /// ```
    pub trusted_proxies: Vec<crate::IpRange>,
    /// The one forwarding header the [trusted proxies](Options::trusted_proxies) set:
    /// the others are never read, since a proxy passes them through as the client wrote
    /// them. Default [`ForwardingHeader::XForwardedFor`](crate::ForwardingHeader).
    pub forwarding_header: crate::ForwardingHeader,
    /// Offer permessage-deflate (RFC 7692) on RFC 6455 WebSockets, with these settings.
    /// Default `None`: no compression. Browsers all ask for it; it pays on large, repetitive
    /// messages (JSON) and costs CPU on both ends. With [`DeflateOptions::default`] a
    /// connection holds no compression state between messages (PROTOCOL.md §9.2, and
    /// [`deflate`](crate::deflate) for what is negotiated). The driver needs the
    /// `deflate` cargo feature to honour it (the `driver` feature enables it).
    pub permessage_deflate: Option<DeflateOptions>,
    /// WebSocket dead-peer detection: ping RFC 6455 sockets (SockJS and raw) whose peer is
    /// silent, and close the session when it does not answer (see [`PingOptions`]).
    /// Default `None`: a peer that vanished without closing its connection is only noticed
    /// when a write to it fails or times out. The driver must report pongs with
    /// [`Engine::handle_ws_pong`](crate::Engine::handle_ws_pong), and the times it holds
    /// a socket's reads back (its application's queue full, the peer's pongs unread) with
    /// [`Engine::handle_ws_reads_held`](crate::Engine::handle_ws_reads_held), during which
    /// nothing is pinged or closed (`sockjs_core::driver` does both).
    pub websocket_ping: Option<PingOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prefix: String::new(),
            heartbeat_delay: Some(Duration::from_secs(25)),
            disconnect_delay: Duration::from_secs(5),
            response_limit: 128 * 1024,
            transports: Transports::ALL,
            hixie76: false,
            jsessionid: Jsessionid::Off,
            sockjs_url: DEFAULT_SOCKJS_URL.to_owned(),
            origins: OriginPolicy::Any,
            protocol: ProtocolVersion::Current,
            abort: AbortPolicy::CloseSession,
            session_binding: SessionBinding::None,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_message_size: 256 * 1024,
            max_queued_bytes: 1024 * 1024,
            max_sessions: 100_000,
            trusted_proxies: Vec::new(),
            forwarding_header: crate::ForwardingHeader::XForwardedFor,
            permessage_deflate: None,
            websocket_ping: None,
        }
    }
}

/// Why [`Options::validate`] refused a set of options, or the driver's
/// `Config::validate` a set of settings ([`OptionsError::ZeroQueue`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionsError {
    /// `prefix` must be empty or start with `/`, and must not end with `/`.
    Prefix,
    /// `sockjs_url` must start with `/` or `http` and contain no `"`, `<`, `>`, CR or LF.
    SockjsUrl,
    /// `heartbeat_delay` (when set), `disconnect_delay` and `websocket_ping`'s `interval`
    /// and `timeout` must be non-zero (heartbeats are turned off with `None`, not zero).
    ZeroDelay,
    /// `heartbeat_delay`, `disconnect_delay` and `websocket_ping`'s `interval` and
    /// `timeout` must be at most a day (longer ones would keep dead sessions practically
    /// forever).
    DelayTooLong,
    /// `response_limit`, `max_request_body`, `max_message_size`, `max_queued_bytes` and
    /// `max_sessions` must be non-zero.
    ZeroLimit,
    /// `permessage_deflate`'s `level` must be at most 9.
    DeflateLevel,
    /// `transports` must not be empty.
    NoTransports,
    /// [`SessionBinding::Cookie`] needs the engine's own cookie: it cannot be combined with
    /// [`Jsessionid::Custom`].
    CookieBinding,
    /// A cookie named `__Secure-…` needs `Secure`, and one named `__Host-…` needs
    /// `Secure`, `path=/` and no `Domain`: browsers drop it otherwise.
    CookiePrefix,
    /// The driver's `Config::max_connection_queue` and `max_connection_queue_bytes` must
    /// be non-zero: with no room, a connection could take no answer (or, for the bytes, no
    /// second item, so its first heartbeat behind a frame not yet written would drop it)
    /// (`Config::validate`, feature `driver`).
    ZeroQueue,
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptionsError::Prefix => "prefix must be empty or start with '/' and not end with '/'",
            OptionsError::SockjsUrl => {
                "sockjs_url must start with '/' or 'http' and contain no '\"', '<', '>', CR or LF"
            }
            OptionsError::ZeroDelay => "heartbeat, disconnect and ping delays must be non-zero",
            OptionsError::DelayTooLong => {
                "heartbeat, disconnect and ping delays must be at most a day"
            }
            OptionsError::ZeroLimit => "limits must be non-zero",
            OptionsError::DeflateLevel => "the permessage-deflate level must be at most 9",
            OptionsError::NoTransports => "at least one transport must be offered",
            OptionsError::CookieBinding => {
                "cookie session binding needs the engine's own JSESSIONID cookie"
            }
            OptionsError::CookiePrefix => {
                "a __Secure- cookie needs Secure; a __Host- cookie needs Secure, path=/ and no Domain"
            }
            OptionsError::ZeroQueue => "the connection queue's bounds must be non-zero",
        })
    }
}

impl std::error::Error for OptionsError {}

impl Options {
    /// Whether a callback of the application reads requests ([`OriginPolicy::Predicate`],
    /// [`Jsessionid::Custom`](crate::Jsessionid::Custom)): they then see every request with
    /// the [`PeerAddr`](crate::PeerAddr) and [`Tls`](crate::Tls) extensions, as the
    /// adapter knows them.
    pub(crate) fn reads_requests(&self) -> bool {
        matches!(self.origins, OriginPolicy::Predicate(_))
            || matches!(self.jsessionid, crate::Jsessionid::Custom(_))
    }

    /// Checks the options for values the engine cannot serve correctly.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if !self.prefix.is_empty() && (!self.prefix.starts_with('/') || self.prefix.ends_with('/'))
        {
            return Err(OptionsError::Prefix);
        }
        let url_ok = (self.sockjs_url.starts_with('/') || self.sockjs_url.starts_with("http"))
            && !self.sockjs_url.contains('"')
            && !self.sockjs_url.contains(['<', '>', '\r', '\n']);
        if !url_ok {
            return Err(OptionsError::SockjsUrl);
        }
        let mut delays = vec![self.disconnect_delay];
        delays.extend(self.heartbeat_delay);
        if let Some(ping) = self.websocket_ping {
            delays.extend([ping.interval, ping.timeout]);
        }
        if delays.iter().any(|d| d.is_zero()) {
            return Err(OptionsError::ZeroDelay);
        }
        let day = Duration::from_secs(86_400);
        if delays.iter().any(|&d| d > day) {
            return Err(OptionsError::DelayTooLong);
        }
        if [
            self.response_limit,
            self.max_request_body,
            self.max_message_size,
            self.max_queued_bytes,
            self.max_sessions,
        ]
        .contains(&0)
        {
            return Err(OptionsError::ZeroLimit);
        }
        if self.permessage_deflate.is_some_and(|d| d.level > 9) {
            return Err(OptionsError::DeflateLevel);
        }
        if self.transports.is_empty() {
            return Err(OptionsError::NoTransports);
        }
        if self.session_binding == SessionBinding::Cookie
            && matches!(self.jsessionid, Jsessionid::Custom(_))
        {
            return Err(OptionsError::CookieBinding);
        }
        if let Jsessionid::Echo(cookie) = &self.jsessionid {
            if !cookie.keeps_its_prefix() {
                return Err(OptionsError::CookiePrefix);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s1_defaults_match_the_spec() {
        let o = Options::default();
        assert_eq!(o.heartbeat_delay, Some(Duration::from_secs(25)));
        assert_eq!(o.disconnect_delay, Duration::from_secs(5));
        assert_eq!(o.response_limit, 131072);
        assert!(o.transports == Transports::ALL && !o.jsessionid.is_on());
        assert_eq!(o.permessage_deflate, None);
        assert_eq!(o.websocket_ping, None);
        assert_eq!(o.validate(), Ok(()));
    }

    #[test]
    fn validation() {
        let bad_url = Options {
            sockjs_url: "ftp://x".into(),
            ..Default::default()
        };
        assert_eq!(bad_url.validate(), Err(OptionsError::SockjsUrl));
        let quote = Options {
            sockjs_url: "/a\"b".into(),
            ..Default::default()
        };
        assert_eq!(quote.validate(), Err(OptionsError::SockjsUrl));
        let prefix = Options {
            prefix: "/echo/".into(),
            ..Default::default()
        };
        assert_eq!(prefix.validate(), Err(OptionsError::Prefix));
        let zero = Options {
            max_sessions: 0,
            ..Default::default()
        };
        assert_eq!(zero.validate(), Err(OptionsError::ZeroLimit));
        let level = Options {
            permessage_deflate: Some(DeflateOptions {
                level: 10,
                ..DeflateOptions::default()
            }),
            ..Default::default()
        };
        assert_eq!(level.validate(), Err(OptionsError::DeflateLevel));
        let heartbeats_off = Options {
            heartbeat_delay: None,
            ..Default::default()
        };
        assert_eq!(heartbeats_off.validate(), Ok(()));
        let zero_heartbeat = Options {
            heartbeat_delay: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(zero_heartbeat.validate(), Err(OptionsError::ZeroDelay));
        let ping = |interval, timeout| Options {
            websocket_ping: Some(PingOptions { interval, timeout }),
            ..Default::default()
        };
        let (second, week) = (Duration::from_secs(1), Duration::from_secs(7 * 86_400));
        assert_eq!(ping(second, second).validate(), Ok(()));
        assert_eq!(
            ping(Duration::ZERO, second).validate(),
            Err(OptionsError::ZeroDelay)
        );
        assert_eq!(
            ping(second, Duration::ZERO).validate(),
            Err(OptionsError::ZeroDelay)
        );
        assert_eq!(
            ping(week, second).validate(),
            Err(OptionsError::DelayTooLong)
        );
        let no_transports = Options {
            transports: Transports::NONE,
            ..Default::default()
        };
        assert_eq!(no_transports.validate(), Err(OptionsError::NoTransports));
        let custom_bound = Options {
            jsessionid: Jsessionid::custom(|_| None),
            session_binding: SessionBinding::Cookie,
            ..Default::default()
        };
        assert_eq!(custom_bound.validate(), Err(OptionsError::CookieBinding));
        let named = |name: &str, secure: bool, path: &str, domain: Option<&str>| {
            let mut cookie = crate::CookieAttributes::default()
                .with_name(name)
                .and_then(|c| c.with_path(path))
                .expect("valid")
                .with_secure(secure);
            if let Some(domain) = domain {
                cookie = cookie.with_domain(domain).expect("valid");
            }
            Options {
                jsessionid: Jsessionid::Echo(cookie),
                ..Default::default()
            }
            .validate()
        };
        assert_eq!(named("__Host-sockjs", true, "/", None), Ok(()));
        assert_eq!(named("__host-sockjs", true, "/", None), Ok(()));
        for refused in [
            named("__Host-sockjs", false, "/", None),
            named("__HOST-sockjs", true, "/echo", None),
            named("__Host-sockjs", true, "/", Some("example.com")),
            named("__Secure-sockjs", false, "/", None),
            named("__secure-sockjs", false, "/echo", None),
        ] {
            assert_eq!(refused, Err(OptionsError::CookiePrefix));
        }
        assert_eq!(
            named("__Secure-sockjs", true, "/echo", Some("example.com")),
            Ok(())
        );
        assert_eq!(named("_Host-sockjs", false, "/echo", None), Ok(()));
        let head = http::Request::new(()).into_parts().0;
        let list = OriginPolicy::List(vec!["https://a".into()]);
        assert!(list.allows("https://a", &head) && !list.allows("null", &head));
    }
}
