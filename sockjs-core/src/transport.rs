//! The HTTP receiving transports (PROTOCOL.md §8): content types, preludes and how each
//! wraps a frame.

use crate::escape::{percent_event_data, quote_js};
use crate::options::ProtocolVersion;
use crate::pages::htmlfile_prelude;

/// The transport a session was opened with, as reported to the application.
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

    /// The response Content-Type of a receiver of this transport.
    pub(crate) fn content_type(self, protocol: ProtocolVersion) -> &'static str {
        match self {
            Transport::EventSource => match protocol {
                ProtocolVersion::Current => "text/event-stream",
                ProtocolVersion::V0_3_3 => "text/event-stream; charset=UTF-8",
            },
            Transport::HtmlFile => "text/html; charset=UTF-8",
            _ => "application/javascript; charset=UTF-8",
        }
    }

    /// The bytes a streaming response starts with, as their own chunk.
    pub(crate) fn prelude(self, callback: &str) -> Option<Vec<u8>> {
        match self {
            Transport::XhrStreaming => {
                let mut p = vec![b'h'; 2049];
                p[2048] = b'\n';
                Some(p)
            }
            Transport::EventSource => Some(b"\r\n".to_vec()),
            Transport::HtmlFile => Some(htmlfile_prelude(callback)),
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
    fn s8_xhr_streaming_prelude() {
        let p = Transport::XhrStreaming.prelude("").expect("prelude");
        assert_eq!(p.len(), 2049);
        assert!(p[..2048].iter().all(|&b| b == b'h') && p[2048] == b'\n');
        assert_eq!(Transport::EventSource.prelude(""), Some(b"\r\n".to_vec()));
        assert_eq!(Transport::XhrPolling.prelude(""), None);
    }
}
