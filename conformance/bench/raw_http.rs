//! The floor of the HTTP transports: a minimal xhr-streaming, eventsource and xhr-polling
//! echo server on tokio that makes the same system calls per echo as a SockJS server (read the
//! `xhr_send`, write its `204`, write the echo to the session's receiver) and does as
//! little else as it can: no SockJS decoding or escaping (the echo frame is `a` and the
//! `xhr_send` body as it came), no headers beyond the ones HTTP/1.1 needs, no timers, no
//! heartbeats, no bounds. It is what the kernel's loopback path and one runtime cost, not
//! a server anyone should run: it trusts its client (the load generator) completely.
//!
//! Usage: `raw_http [ADDR]` (default `127.0.0.1:0`; loopback only). Prints
//! `listening on http://ADDR` once bound, then serves `…/SESSION/xhr_streaming`,
//! `…/SESSION/eventsource`, `…/SESSION/xhr` and `…/SESSION/xhr_send` on any prefix until
//! killed. Worker
//! threads: the CPUs the process may run on (one CPU: a current-thread runtime, as
//! sockjs-tokio's test server and `raw_echo`).
#![forbid(unsafe_code)]

#[path = "loopback.rs"]
mod loopback;
#[path = "tokio_floor.rs"]
mod tokio_floor;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

/// A connection's writing half, shared with the requests of other connections that answer
/// on it (an `xhr_send` writes its echo to the session's receiver).
type Writer = Arc<tokio::sync::Mutex<OwnedWriteHalf>>;

/// Where a session's echoes go.
#[derive(Default)]
struct Session {
    /// The open xhr-streaming or eventsource response, if any, and whether it is
    /// eventsource.
    stream: Option<(Writer, bool)>,
    /// The waiting poll, if any.
    poll: Option<Writer>,
    /// Messages no poll has taken yet: the inside of a JSON array.
    queued: Vec<u8>,
}

type Sessions = Arc<Mutex<HashMap<Box<[u8]>, Session>>>;

const STREAM_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/javascript; charset=UTF-8\r\n\
Transfer-Encoding: chunked\r\n\r\n";
const EVENTSOURCE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream; charset=UTF-8\r\n\
Transfer-Encoding: chunked\r\n\r\n";
const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

/// One complete request found at the start of `buf`: its path, body, and length in all.
fn parse(buf: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &buf[..end];
    let mut lines = head.split(|&b| b == b'\n');
    let mut request_line = lines.next()?.split(|&b| b == b' ');
    let _method = request_line.next()?;
    let path = request_line.next()?;
    let mut length = 0usize;
    for line in lines {
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if line[..colon].eq_ignore_ascii_case(b"content-length") {
                let value = std::str::from_utf8(&line[colon + 1..]).ok()?;
                length = value.trim().parse().ok()?;
            }
        }
    }
    let body = buf.get(end..end + length)?;
    Some((path, body, end + length))
}

/// The session id and the endpoint of `…/SESSION/ENDPOINT`.
fn route(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut parts = path.rsplit(|&b| b == b'/');
    let endpoint = parts.next()?;
    let session = parts.next()?;
    Some((session, endpoint))
}

/// `data` as one HTTP chunk.
fn chunk(out: &mut Vec<u8>, data: &[&[u8]]) {
    let len: usize = data.iter().map(|d| d.len()).sum();
    // Written in place: no string made per chunk.
    let _ = std::io::Write::write_fmt(out, format_args!("{len:x}\r\n"));
    for d in data {
        out.extend_from_slice(d);
    }
    out.extend_from_slice(b"\r\n");
}

/// A polling answer with `body`.
fn answer(out: &mut Vec<u8>, body: &[&[u8]]) {
    let len: usize = body.iter().map(|d| d.len()).sum();
    let _ = std::io::Write::write_fmt(
        out,
        format_args!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/javascript; charset=UTF-8\r\n\
             Content-Length: {len}\r\n\r\n"
        ),
    );
    for d in body {
        out.extend_from_slice(d);
    }
}

async fn write(writer: &Writer, data: &[u8]) -> bool {
    writer.lock().await.write_all(data).await.is_ok()
}

/// Session `id`, made if new: the id is copied only then, not per request.
fn session<'a>(sessions: &'a mut HashMap<Box<[u8]>, Session>, id: &[u8]) -> &'a mut Session {
    if !sessions.contains_key(id) {
        sessions.insert(id.into(), Session::default());
    }
    sessions.get_mut(id).expect("inserted above")
}

fn lock(sessions: &Sessions) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, Session>> {
    sessions.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a request asked for.
enum Endpoint {
    Send,
    Streaming,
    EventSource,
    Poll,
    Other,
}

async fn serve(stream: TcpStream, sessions: Sessions) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let writer: Writer = Arc::new(tokio::sync::Mutex::new(writer));
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    let mut frame = Vec::with_capacity(256);
    loop {
        while let Some((path, body, used)) = parse(&buf) {
            out.clear();
            frame.clear();
            let (id, endpoint) = match route(path) {
                Some((id, b"xhr_send")) => (id, Endpoint::Send),
                Some((id, b"xhr_streaming")) => (id, Endpoint::Streaming),
                Some((id, b"eventsource")) => (id, Endpoint::EventSource),
                Some((id, b"xhr")) => (id, Endpoint::Poll),
                _ => (&b""[..], Endpoint::Other),
            };
            // Another connection's writer to send the echo on, when there is one.
            let echo = {
                let mut sessions = lock(&sessions);
                match endpoint {
                    Endpoint::Send => {
                        out.extend_from_slice(NO_CONTENT);
                        let items = body
                            .strip_prefix(b"[")
                            .and_then(|b| b.strip_suffix(b"]"))
                            .unwrap_or(body);
                        let session = session(&mut sessions, id);
                        if let Some((stream, eventsource)) = &session.stream {
                            if *eventsource {
                                chunk(&mut frame, &[b"data: a[", items, b"]\r\n\r\n"]);
                            } else {
                                chunk(&mut frame, &[b"a[", items, b"]\n"]);
                            }
                            Some(stream.clone())
                        } else if let Some(poll) = session.poll.take() {
                            answer(&mut frame, &[b"a[", items, b"]\n"]);
                            Some(poll)
                        } else {
                            if !session.queued.is_empty() {
                                session.queued.push(b',');
                            }
                            session.queued.extend_from_slice(items);
                            None
                        }
                    }
                    Endpoint::Streaming => {
                        let stream = Some((writer.clone(), false));
                        session(&mut sessions, id).stream = stream;
                        out.extend_from_slice(STREAM_HEAD);
                        chunk(&mut out, &[&[b'h'; 2048], b"\n"]);
                        chunk(&mut out, &[b"o\n"]);
                        None
                    }
                    Endpoint::EventSource => {
                        let stream = Some((writer.clone(), true));
                        session(&mut sessions, id).stream = stream;
                        out.extend_from_slice(EVENTSOURCE_HEAD);
                        chunk(&mut out, &[b"\r\n"]);
                        chunk(&mut out, &[b"data: o\r\n\r\n"]);
                        None
                    }
                    Endpoint::Poll => {
                        match sessions.get_mut(id) {
                            None => {
                                sessions.insert(id.into(), Session::default());
                                answer(&mut out, &[b"o\n"]);
                            }
                            Some(session) if !session.queued.is_empty() => {
                                let queued = std::mem::take(&mut session.queued);
                                answer(&mut out, &[b"a[", &queued, b"]\n"]);
                            }
                            Some(session) => session.poll = Some(writer.clone()),
                        }
                        None
                    }
                    Endpoint::Other => {
                        out.extend_from_slice(NOT_FOUND);
                        None
                    }
                }
            };
            buf.drain(..used);
            if !out.is_empty() && !write(&writer, &out).await {
                return;
            }
            if let Some(to) = echo {
                let _ = write(&to, &frame).await;
            }
        }
        let mut piece = [0u8; 4096];
        match reader.read(&mut piece).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&piece[..n]),
        }
    }
}

fn main() -> ExitCode {
    let sessions = Sessions::default();
    tokio_floor::run("raw_http", move |stream| serve(stream, sessions.clone()))
}
