//! The HTTP receiving transports (PROTOCOL.md §8): content types, preludes and how each
//! wraps a frame.

use std::fmt;

use bytes::Bytes;
use http::HeaderValue;

use crate::escape::{percent_event_data, quote_js};
use crate::options::ProtocolVersion;
use crate::pages::htmlfile_prelude;
use crate::response::{
    APPLICATION_JAVASCRIPT, TEXT_EVENT_STREAM, TEXT_EVENT_STREAM_UTF8, TEXT_HTML,
};
use crate::route::SessionEndpoint;

/// xhr-streaming's prelude (§8): 2048 `h` and a newline, so that old browsers start
/// handing the stream over.
static XHR_STREAMING_PRELUDE: [u8; 2049] = {
    let mut prelude = [b'h'; 2049];
    prelude[2048] = b'\n';
    prelude
};

/// A transport: the one a session was opened with, as reported to the application, and
/// what [`Transports`] switches on and off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// SockJS framing over RFC 6455 or hixie-76 WebSocket.
    WebSocket,
    /// Raw WebSocket at `P/websocket`, no SockJS framing.
    RawWebSocket,
    /// `xhr` polling.
    XhrPolling,
    /// `xhr_streaming`.
    XhrStreaming,
    /// `eventsource`.
    EventSource,
    /// `htmlfile`.
    HtmlFile,
    /// `jsonp` polling.
    JsonpPolling,
}

impl Transport {
    /// Every transport, in declaration order.
    pub const ALL: [Transport; 7] = [
        Transport::WebSocket,
        Transport::RawWebSocket,
        Transport::XhrPolling,
        Transport::XhrStreaming,
        Transport::EventSource,
        Transport::HtmlFile,
        Transport::JsonpPolling,
    ];

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The name sockjs-client uses for it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::RawWebSocket => "websocket-raw",
            Transport::XhrPolling => "xhr-polling",
            Transport::XhrStreaming => "xhr-streaming",
            Transport::EventSource => "eventsource",
            Transport::HtmlFile => "htmlfile",
            Transport::JsonpPolling => "jsonp-polling",
        }
    }

    /// Whether the transport is a WebSocket (SockJS-framed or raw): one socket, both ways.
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::WebSocket | Transport::RawWebSocket)
    }

    /// Whether one response carries many frames (as opposed to one frame per poll).
    pub fn is_streaming(self) -> bool {
        matches!(
            self,
            Transport::XhrStreaming | Transport::EventSource | Transport::HtmlFile
        )
    }

    /// Whether a receiver of this transport answers with CORS headers (PROTOCOL.md §3.3):
    /// the ones browsers fetch with XHR or EventSource, which cross origins.
    pub(crate) fn receiver_has_cors(self) -> bool {
        matches!(
            self,
            Transport::XhrPolling | Transport::XhrStreaming | Transport::EventSource
        )
    }

    /// The response Content-Type of a receiver of this transport.
    pub(crate) fn content_type(self, protocol: ProtocolVersion) -> HeaderValue {
        match self {
            Transport::EventSource => match protocol {
                ProtocolVersion::Current => TEXT_EVENT_STREAM,
                ProtocolVersion::V0_3_3 => TEXT_EVENT_STREAM_UTF8,
            },
            Transport::HtmlFile => TEXT_HTML,
            _ => APPLICATION_JAVASCRIPT,
        }
    }

    /// The bytes a streaming response starts with, as their own chunk: shared, not built
    /// per stream, except htmlfile's (it names the callback).
    pub(crate) fn prelude(self, callback: &str) -> Option<Bytes> {
        match self {
            Transport::XhrStreaming => Some(Bytes::from_static(&XHR_STREAMING_PRELUDE)),
            Transport::EventSource => Some(Bytes::from_static(b"\r\n")),
            Transport::HtmlFile => Some(Bytes::from(htmlfile_prelude(callback))),
            _ => None,
        }
    }

    /// Wraps one frame as this transport writes it. `frame` already ends with the spare
    /// capacity for xhr's newline, which is pushed in place.
    pub(crate) fn wrap(
        self,
        mut frame: Vec<u8>,
        callback: &str,
        protocol: ProtocolVersion,
    ) -> Vec<u8> {
        match self {
            Transport::XhrPolling | Transport::XhrStreaming => {
                frame.push(b'\n');
                frame
            }
            Transport::EventSource => {
                let mut out = Vec::with_capacity(frame.len() + 10);
                out.extend_from_slice(b"data: ");
                percent_event_data(&mut out, &frame);
                out.extend_from_slice(b"\r\n\r\n");
                out
            }
            Transport::HtmlFile => {
                let mut out = Vec::with_capacity(frame.len() * 5 / 4 + 32);
                out.extend_from_slice(b"<script>\np(");
                quote_js(&mut out, &frame, true);
                out.extend_from_slice(b");\n</script>\r\n");
                out
            }
            Transport::JsonpPolling => {
                let mut out = Vec::with_capacity(frame.len() * 5 / 4 + callback.len() + 16);
                if protocol == ProtocolVersion::Current {
                    out.extend_from_slice(b"/**/");
                }
                out.extend_from_slice(callback.as_bytes());
                out.push(b'(');
                quote_js(&mut out, &frame, false);
                out.extend_from_slice(b");\r\n");
                out
            }
            Transport::WebSocket | Transport::RawWebSocket => frame,
        }
    }
}

/// A set of [`Transport`]s: the ones a service offers ([`Options::transports`]). A
/// transport that is not in it has no route: its endpoints answer 404, as for an unknown
/// path (PROTOCOL.md §2).
///
/// The sending endpoints follow the receivers that use them: `xhr_send` is served while any
/// of xhr-polling, xhr-streaming, EventSource or htmlfile is (sockjs-client sends through
/// it for all four), `jsonp_send` while JSONP-polling is. `/info` says `"websocket":false`
/// when [`Transport::WebSocket`] is not in the set. The greeting, `/info` and the iframe
/// page are always served.
///
/// ```
/// use sockjs_core::{Options, Transport, Transports};
/// // No JSONP and no htmlfile (sockjs-go's DisableJSONP and DisableHtmlFile):
/// let options = Options {
///     transports: Transports::ALL
///         .without(Transport::JsonpPolling)
///         .without(Transport::HtmlFile),
///     ..Default::default()
/// };
/// assert!(!options.transports.contains(Transport::HtmlFile));
/// // Only WebSockets, SockJS and raw:
/// let sockets: Transports = [Transport::WebSocket, Transport::RawWebSocket].into_iter().collect();
/// assert_eq!(sockets.iter().count(), 2);
/// ```
///
/// [`Options::transports`]: crate::Options::transports
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transports(u8);

impl Transports {
    /// Every transport (the default).
    pub const ALL: Transports = Transports((1 << Transport::ALL.len()) - 1);
    /// No transport at all ([`Options::validate`](crate::Options::validate) refuses it as a
    /// service's set; a start for building one with [`Transports::with`]).
    pub const NONE: Transports = Transports(0);

    /// This set and `transport`.
    #[must_use]
    pub const fn with(self, transport: Transport) -> Transports {
        Transports(self.0 | transport.bit())
    }

    /// This set without `transport`.
    #[must_use]
    pub const fn without(self, transport: Transport) -> Transports {
        Transports(self.0 & !transport.bit())
    }

    /// Whether `transport` is in the set.
    pub const fn contains(self, transport: Transport) -> bool {
        self.0 & transport.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The transports in the set, in [`Transport::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Transport> {
        Transport::ALL
            .into_iter()
            .filter(move |t| self.contains(*t))
    }

    /// Whether a request for this session endpoint has a route.
    pub(crate) fn serves(self, endpoint: SessionEndpoint) -> bool {
        let any = |set: &[Transport]| set.iter().any(|t| self.contains(*t));
        match endpoint {
            SessionEndpoint::WebSocket => self.contains(Transport::WebSocket),
            SessionEndpoint::Xhr => self.contains(Transport::XhrPolling),
            SessionEndpoint::XhrStreaming => self.contains(Transport::XhrStreaming),
            SessionEndpoint::EventSource => self.contains(Transport::EventSource),
            SessionEndpoint::HtmlFile => self.contains(Transport::HtmlFile),
            SessionEndpoint::Jsonp | SessionEndpoint::JsonpSend => {
                self.contains(Transport::JsonpPolling)
            }
            SessionEndpoint::XhrSend => any(&[
                Transport::XhrPolling,
                Transport::XhrStreaming,
                Transport::EventSource,
                Transport::HtmlFile,
            ]),
        }
    }
}

impl Default for Transports {
    fn default() -> Self {
        Transports::ALL
    }
}

impl FromIterator<Transport> for Transports {
    fn from_iter<I: IntoIterator<Item = Transport>>(iter: I) -> Self {
        iter.into_iter().fold(Transports::NONE, Transports::with)
    }
}

impl fmt::Debug for Transports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(t: Transport, frame: &str) -> String {
        String::from_utf8(t.wrap(frame.as_bytes().to_vec(), "cb", ProtocolVersion::Current))
            .expect("utf8")
    }

    #[test]
    fn s8_wrapped_open_frame_lengths() {
        assert_eq!(wrap(Transport::XhrStreaming, "o"), "o\n");
        assert_eq!(wrap(Transport::EventSource, "o"), "data: o\r\n\r\n");
        assert_eq!(wrap(Transport::EventSource, "o").len(), 11);
        assert_eq!(
            wrap(Transport::HtmlFile, "o"),
            "<script>\np(\"o\");\n</script>\r\n"
        );
        assert_eq!(wrap(Transport::HtmlFile, "o").len(), 28);
    }

    #[test]
    fn s8_jsonp_frames() {
        assert_eq!(wrap(Transport::JsonpPolling, "o"), "/**/cb(\"o\");\r\n");
        assert_eq!(
            wrap(Transport::JsonpPolling, r#"a["b"]"#),
            "/**/cb(\"a[\\\"b\\\"]\");\r\n"
        );
        let old = Transport::JsonpPolling.wrap(b"o".to_vec(), "cb", ProtocolVersion::V0_3_3);
        assert_eq!(old, b"cb(\"o\");\r\n");
    }

    #[test]
    fn s8_htmlfile_script_cannot_be_closed_by_a_message() {
        let out = wrap(Transport::HtmlFile, r#"a["</script><script>alert(1)"]"#);
        assert_eq!(out.matches("</script>").count(), 1);
    }

    #[test]
    fn s2_transport_sets() {
        assert_eq!(Transports::default(), Transports::ALL);
        assert_eq!(Transports::ALL.iter().collect::<Vec<_>>(), Transport::ALL);
        assert!(Transports::NONE.is_empty() && !Transports::ALL.is_empty());
        let set = Transports::ALL.without(Transport::XhrPolling);
        assert!(!set.contains(Transport::XhrPolling) && set.contains(Transport::XhrStreaming));
        assert_eq!(set.with(Transport::XhrPolling), Transports::ALL);
        let only: Transports = [Transport::EventSource].into_iter().collect();
        assert_eq!(format!("{only:?}"), "{EventSource}");
        assert!(only.serves(SessionEndpoint::XhrSend) && !only.serves(SessionEndpoint::Xhr));
        let jsonp = Transports::NONE.with(Transport::JsonpPolling);
        assert!(
            jsonp.serves(SessionEndpoint::JsonpSend) && !jsonp.serves(SessionEndpoint::XhrSend)
        );
    }

    #[test]
    fn s8_xhr_streaming_prelude() {
        let p = Transport::XhrStreaming.prelude("").expect("prelude");
        assert_eq!(p.len(), 2049);
        assert!(p[..2048].iter().all(|&b| b == b'h') && p[2048] == b'\n');
        assert_eq!(
            Transport::EventSource.prelude("").as_deref(),
            Some(&b"\r\n"[..])
        );
        assert_eq!(Transport::XhrPolling.prelude(""), None);
    }
}
