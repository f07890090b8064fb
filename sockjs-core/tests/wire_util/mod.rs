//! Helpers shared by the wire integration tests.
#![allow(dead_code)]

use bytes::BytesMut;
use sockjs_core::wire::{Decoded, Limits, RequestDecoder, WireError};

/// A comparable summary of one decoder output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Continue,
    Request(Summary),
}

/// Everything observable about a decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub method: String,
    pub uri: String,
    pub version: http::Version,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
    pub upgrade: bool,
    pub expect_continue: bool,
}

pub fn summarize(decoded: Decoded) -> Event {
    match decoded {
        Decoded::Continue => Event::Continue,
        Decoded::Request(req) => Event::Request(Summary {
            method: req.request.method().to_string(),
            uri: req.request.uri().to_string(),
            version: req.request.version(),
            headers: req
                .request
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: req.request.body().to_vec(),
            keep_alive: req.keep_alive,
            upgrade: req.upgrade,
            expect_continue: req.expect_continue,
        }),
    }
}

/// The result of feeding pieces to a decoder.
#[derive(Debug)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub error: Option<WireError>,
    pub leftover: BytesMut,
}

impl Outcome {
    /// Only the requests, without `Continue` events.
    pub fn requests(&self) -> Vec<Summary> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Request(s) => Some(s.clone()),
                Event::Continue => None,
            })
            .collect()
    }
}

/// Feed `pieces` one after another, decoding everything after each; stop at
/// the first error.
pub fn feed_pieces(limits: Limits, pieces: &[&[u8]]) -> Outcome {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(d)) => events.push(summarize(d)),
                Err(e) => {
                    return Outcome {
                        events,
                        error: Some(e),
                        leftover: buf,
                    };
                }
            }
        }
    }
    Outcome {
        events,
        error: None,
        leftover: buf,
    }
}

/// Feed `input` whole, with default limits.
pub fn feed(input: &[u8]) -> Outcome {
    feed_pieces(Limits::default(), &[input])
}

/// Feed `input` split at byte `at`.
pub fn feed_split(input: &[u8], at: usize) -> Outcome {
    feed_pieces(Limits::default(), &[&input[..at], &input[at..]])
}

/// Feed `input` one byte at a time.
pub fn feed_bytewise(limits: Limits, input: &[u8]) -> Outcome {
    let pieces: Vec<&[u8]> = input.chunks(1).collect();
    feed_pieces(limits, &pieces)
}

/// The single error `input` produces with `limits`.
pub fn error_of(limits: Limits, input: &[u8]) -> WireError {
    match feed_pieces(limits, &[input]).error {
        Some(e) => e,
        None => panic!("no error for {:?}", String::from_utf8_lossy(input)),
    }
}
