//! The response body: complete, or a stream fed by the engine one frame at a time.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use sockjs_core::Content;
use sockjs_core::driver::Exchange;

/// The response body of a [`SockJs`](crate::SockJs) service.
///
/// Streaming transports yield one data frame per SockJS frame, so hyper writes one HTTP
/// chunk each and flushes as soon as nothing more is queued. Dropping a streaming body
/// before its end tells the engine the client went away.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Stream(Exchange),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let streaming = matches!(self.kind, Kind::Stream(_));
        f.debug_struct("Body")
            .field("streaming", &streaming)
            .finish()
    }
}

/// A streaming body failed: its connection's outgoing queue overflowed (the client does not
/// read), so the connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyError;

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outgoing queue overflowed")
    }
}

impl std::error::Error for BodyError {}

impl Body {
    /// An empty body.
    pub fn empty() -> Body {
        Body {
            kind: Kind::Full(None),
        }
    }

    /// A complete body.
    pub fn full(data: Bytes) -> Body {
        Body {
            kind: Kind::Full((!data.is_empty()).then_some(data)),
        }
    }

    /// A small `text/plain` answer.
    pub(crate) fn plain(status: http::StatusCode, text: &'static str) -> http::Response<Body> {
        sockjs_core::driver::web::plain(status, text).map(Body::full)
    }

    pub(crate) fn stream(exchange: Exchange) -> Body {
        Body {
            kind: Kind::Stream(exchange),
        }
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.kind {
            Kind::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Stream(exchange) => loop {
                return match exchange.poll_next(cx) {
                    Poll::Ready(Some(Content::Chunk(data))) => {
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Poll::Ready(Some(Content::StreamEnd)) => Poll::Ready(None),
                    Poll::Ready(Some(_)) => continue,
                    // The exchange ended without its end: fail, so hyper drops the connection.
                    Poll::Ready(None) => Poll::Ready(Some(Err(BodyError))),
                    Poll::Pending => Poll::Pending,
                };
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}
