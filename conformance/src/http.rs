//! A small HTTP/1.x client on raw bytes.
//!
//! It writes requests byte for byte as given and reads responses without hiding anything:
//! the head is parsed as sent (header order and case kept), and bodies can be read by their
//! framing (`Content-Length`, chunked, close-delimited), one chunk at a time (to check chunk
//! boundaries), or as raw bytes.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::tls::ClientStream;
use crate::util::esc;

/// Largest response head accepted (bytes).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Largest body or chunk accepted (bytes).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A client-side failure: I/O error, timeout, or a malformed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl Error {
    fn io(what: &str, e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Error(format!("{what}: timed out"))
            }
            _ => Error(format!("{what}: {e}")),
        }
    }
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// An HTTP request to write on the wire.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Request target (path and query), written as given (no percent-encoding applied).
    pub path: String,
    /// Protocol version string, e.g. `HTTP/1.1`.
    pub version: String,
    /// Header fields, written in order after `Host`.
    pub headers: Vec<(String, String)>,
    /// Body bytes, if any.
    pub body: Option<Vec<u8>>,
    /// Whether to add a `Content-Length` header (for the body, or `0` without one).
    pub content_length: bool,
}

impl Request {
    /// A request with no headers and no body; `Content-Length` is added for POST.
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            version: "HTTP/1.1".to_string(),
            headers: Vec::new(),
            body: None,
            content_length: method.eq_ignore_ascii_case("POST"),
        }
    }

    /// Adds a header field.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds several header fields.
    pub fn headers(mut self, headers: &[(&str, &str)]) -> Self {
        for (n, v) in headers {
            self.headers.push((n.to_string(), v.to_string()));
        }
        self
    }

    /// Sets the body (and adds `Content-Length`).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self.content_length = true;
        self
    }

    /// Sets the protocol version, e.g. `HTTP/1.0`.
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_string();
        self
    }

    /// Leaves out the `Content-Length` header even for POST.
    pub fn without_content_length(mut self) -> Self {
        self.content_length = false;
        self
    }

    /// Serializes the request; `host` is written as the `Host` header.
    pub fn to_bytes(&self, host: &str) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(
            format!("{} {} {}\r\n", self.method, self.path, self.version).as_bytes(),
        );
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
        }
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        if self.content_length {
            let len = self.body.as_ref().map_or(0, Vec::len);
            out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if let Some(b) = &self.body {
            out.extend_from_slice(b);
        }
        out
    }
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Version from the status line, e.g. `HTTP/1.1`.
    pub version: String,
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header (case-insensitive name), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether the header is present (with any value).
    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether `Transfer-Encoding` ends with `chunked`.
    pub fn is_chunked(&self) -> bool {
        self.header_all("transfer-encoding").iter().any(|v| {
            v.rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        })
    }

    /// The `Content-Length` value, if present and valid: digits only (RFC 9110 §8.6, no
    /// sign), and every field of it the same.
    pub fn content_length(&self) -> Option<Result<usize>> {
        let value = self.header("content-length")?;
        let parse = |v: &str| {
            let v = v.trim();
            v.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse::<usize>().ok())
                .flatten()
                .ok_or_else(|| Error(format!("invalid Content-Length {v:?}")))
        };
        let first = match parse(value) {
            Ok(n) => n,
            Err(e) => return Some(Err(e)),
        };
        let conflicting = self
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .any(|(_, v)| parse(v).is_err() || parse(v).is_ok_and(|n| n != first));
        Some(if conflicting {
            Err(Error("conflicting Content-Length fields".into()))
        } else {
            Ok(first)
        })
    }

    /// How the body of this response is delimited, given the request method.
    pub fn body_kind(&self, method: &str) -> Result<BodyKind> {
        if method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            return Ok(BodyKind::None);
        }
        if self.is_chunked() {
            return Ok(BodyKind::Chunked);
        }
        match self.content_length() {
            Some(Ok(n)) => Ok(BodyKind::Length(n)),
            Some(Err(e)) => Err(e),
            // PROTOCOL.md §10: a 200 to OPTIONS (a preflight, whose body §3.3 leaves empty)
            // needs no length to be complete; reading it to the close would wait out the
            // keep-alive.
            None if method.eq_ignore_ascii_case("OPTIONS") && self.status == 200 => {
                Ok(BodyKind::None)
            }
            None => Ok(BodyKind::Close),
        }
    }

    /// One-line summary for failure messages.
    pub fn summary(&self) -> String {
        format!("{} {} {}", self.version, self.status, self.reason)
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (204, 304, 1xx, HEAD).
    None,
    /// Exactly this many bytes.
    Length(usize),
    /// Chunked transfer coding.
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The head.
    pub head: Head,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// How the body was delimited.
    pub kind: BodyKind,
}

impl Response {
    /// Status code.
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses a response head (status line and headers, without the blank line).
///
/// Field values may hold bytes that are not UTF-8 (RFC 9110 §5.5's obs-text, such as an
/// echoed `Origin` a client sent that way): they read as U+FFFD. The status line and field
/// names must be ASCII.
pub fn parse_head(bytes: &[u8]) -> Result<Head> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(Error(format!(
            "bad status line \"{}\"",
            esc(status_line.as_bytes())
        )));
    }
    let status = parts
        .next()
        .and_then(|s| {
            if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse::<u16>().ok()
            } else {
                None
            }
        })
        .ok_or_else(|| {
            Error(format!(
                "bad status line \"{}\"",
                esc(status_line.as_bytes())
            ))
        })?;
    let reason = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Error(format!("bad header line \"{}\"", esc(line.as_bytes()))))?;
        if name.is_empty() || name.contains(' ') || !name.is_ascii() {
            return Err(Error(format!(
                "bad header name \"{}\"",
                esc(name.as_bytes())
            )));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Head {
        version: version.to_string(),
        status,
        reason,
        headers,
    })
}

/// A connection: a byte stream with a read buffer.
#[derive(Debug)]
pub struct Conn<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    host: String,
}

/// A stream over a TCP socket (plain, or TLS), for the socket-level operations of [`Conn`].
pub trait OverTcp: Read + Write {
    /// The TCP socket.
    fn tcp(&self) -> &TcpStream;

    /// Whether something can be read (bytes, EOF or an error) right now; what had to be
    /// taken off the socket to know (decrypted TLS records) goes to `buf`.
    fn input_now(&mut self, buf: &mut Vec<u8>) -> io::Result<bool>;
}

/// Whether peeking at the socket finds something, without taking it.
fn peek_now(tcp: &TcpStream) -> io::Result<bool> {
    tcp.set_nonblocking(true)?;
    let ready = match tcp.peek(&mut [0u8; 1]) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        ),
    };
    tcp.set_nonblocking(false)?;
    Ok(ready)
}

impl OverTcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }

    fn input_now(&mut self, _buf: &mut Vec<u8>) -> io::Result<bool> {
        peek_now(self)
    }
}

impl OverTcp for ClientStream {
    fn tcp(&self) -> &TcpStream {
        ClientStream::tcp(self)
    }

    fn input_now(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        if !self.is_tls() {
            return peek_now(self.tcp());
        }
        self.tcp().set_nonblocking(true)?;
        let mut tmp = [0u8; 4096];
        let ready = match self.read(&mut tmp) {
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ),
        };
        self.tcp().set_nonblocking(false)?;
        Ok(ready)
    }
}

/// A TCP connection to `host:port` with a connect timeout; reads and writes time out after
/// `timeout`.
fn connect_tcp(host: &str, timeout: Duration) -> Result<TcpStream> {
    let addrs: Vec<_> = host
        .to_socket_addrs()
        .map_err(|e| Error::io(&format!("resolving {host}"), &e))?
        .collect();
    let mut last = Error(format!("no address for {host}"));
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| stream.set_write_timeout(Some(timeout)))
                    .map_err(|e| Error::io("setting socket timeouts", &e))?;
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Error::io(&format!("connecting to {addr}"), &e),
        }
    }
    Err(last)
}

impl Conn<TcpStream> {
    /// Connects to `host:port` with a connect timeout; reads and writes time out after
    /// `io_timeout`.
    pub fn connect(host: &str, timeout: Duration) -> Result<Self> {
        Ok(Conn::new(connect_tcp(host, timeout)?, host))
    }
}

impl Conn<ClientStream> {
    /// [`Conn::connect`], then TLS with these settings if there are some.
    pub fn connect_with(
        host: &str,
        timeout: Duration,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Self> {
        let tcp = connect_tcp(host, timeout)?;
        let stream = match tls {
            Some(tls) => ClientStream::tls(tcp, host, tls)
                .map_err(|e| Error::io(&format!("TLS handshake with {host}"), &e))?,
            None => ClientStream::Plain(tcp),
        };
        Ok(Conn::new(stream, host))
    }
}

impl<S: OverTcp> Conn<S> {
    /// Changes the read timeout for later reads.
    pub fn set_read_timeout(&self, timeout: Duration) -> Result<()> {
        self.stream
            .tcp()
            .set_read_timeout(Some(timeout))
            .map_err(|e| Error::io("setting read timeout", &e))
    }

    /// The read timeout set on the socket, if any.
    pub fn read_timeout(&self) -> Option<Duration> {
        self.stream.tcp().read_timeout().ok().flatten()
    }

    /// Closes both directions of the socket (an abort, from the server's point of view).
    pub fn shutdown(&self) {
        let _ = self.stream.tcp().shutdown(std::net::Shutdown::Both);
    }

    /// Closes the socket the ordinary way: shuts both directions down (a FIN goes out at
    /// once) and releases it.
    pub fn close(self) {
        let _ = self.stream.tcp().shutdown(std::net::Shutdown::Both);
    }

    /// Closes the socket abruptly: with `SO_LINGER` 0 the kernel answers the close with a
    /// TCP reset (RST) instead of a FIN, as when a client process is killed.
    pub fn reset(self) {
        let _ = socket2::SockRef::from(self.stream.tcp()).set_linger(Some(Duration::ZERO));
    }

    /// Whether there is something to read (bytes, EOF or an error) right now, without
    /// consuming it or waiting.
    pub fn has_input(&mut self) -> Result<bool> {
        if !self.buf.is_empty() {
            return Ok(true);
        }
        self.stream
            .input_now(&mut self.buf)
            .map_err(|e| Error::io("checking for input", &e))
    }

    /// The underlying stream, and what was read from it but not taken yet.
    pub fn into_stream(self) -> (S, Vec<u8>) {
        (self.stream, self.buf)
    }
}

impl<S: Read + Write> Conn<S> {
    /// Wraps a stream; `host` is used for the `Host` header.
    pub fn new(stream: S, host: &str) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            host: host.to_string(),
        }
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| Error::io("writing request", &e))
    }

    /// Writes a request.
    pub fn send(&mut self, req: &Request) -> Result<()> {
        let bytes = req.to_bytes(&self.host);
        self.write_raw(&bytes)
    }

    /// Reads more bytes into the buffer; returns how many (0 at EOF, a TLS peer's TCP close
    /// without close_notify included: see [`is_eof`]).
    fn fill(&mut self, what: &str) -> Result<usize> {
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_eof(&e) => return Ok(0),
                Err(e) => {
                    let mut err = Error::io(what, &e);
                    if !self.buf.is_empty() {
                        err.0.push_str(&format!(
                            " (buffered so far: \"{}\")",
                            esc(&self.buf[..self.buf.len().min(200)])
                        ));
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Reads the response head.
    pub fn read_head(&mut self) -> Result<Head> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..pos + 4).collect();
                return parse_head(&head[..pos]);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Error("response head too large".into()));
            }
            if self.fill("reading response head")? == 0 {
                return Err(Error(if self.buf.is_empty() {
                    "connection closed before any response".into()
                } else {
                    format!(
                        "connection closed inside the response head: \"{}\"",
                        esc(&self.buf)
                    )
                }));
            }
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact_bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill(&format!("reading {n} bytes"))? == 0 {
                return Err(Error(format!(
                    "connection closed after {} of {n} bytes: \"{}\"",
                    self.buf.len(),
                    esc(&self.buf)
                )));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads a CRLF-terminated line (without the CRLF).
    fn read_line(&mut self, what: &str) -> Result<Vec<u8>> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Ok(line[..pos].to_vec());
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Error(format!("{what}: line too long")));
            }
            if self.fill(what)? == 0 {
                return Err(Error(format!(
                    "{what}: connection closed (buffered: \"{}\")",
                    esc(&self.buf)
                )));
            }
        }
    }

    /// Reads one chunk of a chunked body and returns its data; the terminating chunk
    /// (size 0, trailers consumed) returns an empty vector.
    pub fn read_chunk(&mut self) -> Result<Vec<u8>> {
        let line = self.read_line("reading chunk size")?;
        let text = String::from_utf8_lossy(&line);
        let size_text = text.split(';').next().unwrap_or_default().trim();
        let size = (!size_text.is_empty() && size_text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| usize::from_str_radix(size_text, 16).ok())
            .flatten()
            .ok_or_else(|| Error(format!("bad chunk size line \"{}\"", esc(&line))))?;
        if size > MAX_BODY {
            return Err(Error(format!("chunk too large ({size} bytes)")));
        }
        if size == 0 {
            loop {
                let trailer = self.read_line("reading chunked trailer")?;
                if trailer.is_empty() {
                    return Ok(Vec::new());
                }
            }
        }
        let data = self.read_exact_bytes(size)?;
        let crlf = self.read_exact_bytes(2)?;
        if crlf != b"\r\n" {
            return Err(Error(format!(
                "chunk data not followed by CRLF: got \"{}\"",
                esc(&crlf)
            )));
        }
        Ok(data)
    }

    /// Reads until the server closes the connection.
    pub fn read_to_close(&mut self) -> Result<Vec<u8>> {
        loop {
            if self.buf.len() > MAX_BODY {
                return Err(Error("body too large".into()));
            }
            if self.fill("reading body until close")? == 0 {
                return Ok(std::mem::take(&mut self.buf));
            }
        }
    }

    /// Reads a body of the given kind.
    pub fn read_body(&mut self, kind: BodyKind) -> Result<Vec<u8>> {
        match kind {
            BodyKind::None => Ok(Vec::new()),
            BodyKind::Length(n) => {
                if n > MAX_BODY {
                    return Err(Error(format!("Content-Length {n} too large")));
                }
                self.read_exact_bytes(n)
            }
            BodyKind::Chunked => {
                let mut body = Vec::new();
                loop {
                    let chunk = self.read_chunk()?;
                    if chunk.is_empty() {
                        return Ok(body);
                    }
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_BODY {
                        return Err(Error("body too large".into()));
                    }
                }
            }
            BodyKind::Close => self.read_to_close(),
        }
    }

    /// Reads a complete response to a request made with `method`.
    pub fn read_response(&mut self, method: &str) -> Result<Response> {
        let head = self.read_head()?;
        let kind = head.body_kind(method)?;
        let body = self.read_body(kind)?;
        Ok(Response { head, body, kind })
    }

    /// Sends a request and reads the complete response.
    pub fn roundtrip(&mut self, req: &Request) -> Result<Response> {
        self.send(req)?;
        self.read_response(&req.method)
    }

    /// Whether the peer has closed the connection: buffered bytes count as "not closed";
    /// otherwise waits for EOF until the read timeout.
    pub fn is_closed(&mut self) -> std::result::Result<bool, Error> {
        if !self.buf.is_empty() {
            return Ok(false);
        }
        let mut tmp = [0u8; 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => Ok(true),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset || is_eof(&e) => Ok(true),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::io("waiting for close", &e)),
        }
    }

    /// Bytes received but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// Whether a read error is the end of input: over TLS, rustls reports a peer that closed
/// TCP without a close_notify alert as `UnexpectedEof`. Many servers close that way; the
/// bytes before it are whole, so it ends a close-delimited body or a connection as a plain
/// EOF does (as [`crate::ws`] and [`crate::deflate`] take it too).
fn is_eof(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::UnexpectedEof
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// An in-memory duplex stream: reads from `input`, collects writes. With
    /// `unexpected_eof`, its end is an `UnexpectedEof` error, as rustls reports a TCP close
    /// without close_notify.
    struct Mock {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
        unexpected_eof: bool,
    }

    impl Read for Mock {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // Deliver at most 7 bytes per read to exercise buffering.
            let n = buf.len().min(7);
            match self.input.read(&mut buf[..n])? {
                0 if self.unexpected_eof && n > 0 => Err(io::ErrorKind::UnexpectedEof.into()),
                n => Ok(n),
            }
        }
    }

    impl Write for Mock {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn conn(input: &[u8]) -> Conn<Mock> {
        Conn::new(
            Mock {
                input: Cursor::new(input.to_vec()),
                output: Vec::new(),
                unexpected_eof: false,
            },
            "example:80",
        )
    }

    /// [`conn`] whose end is a TLS close without close_notify.
    fn tls_conn(input: &[u8]) -> Conn<Mock> {
        let mut c = conn(input);
        c.stream.unexpected_eof = true;
        c
    }

    #[test]
    fn a_tls_close_without_close_notify_ends_the_input() {
        let mut c = tls_conn(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nWelcome to SockJS!\n");
        let r = c.read_response("GET").unwrap();
        assert_eq!(r.kind, BodyKind::Close);
        assert_eq!(r.body, b"Welcome to SockJS!\n");
        assert!(c.is_closed().unwrap());
        // Still an early end where the framing wants more.
        let mut c = tls_conn(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab");
        let e = c.read_response("GET").unwrap_err();
        assert!(e.0.contains("connection closed after 2 of 5 bytes"), "{e}");
    }

    #[test]
    fn request_serialization() {
        let req = Request::new("POST", "/echo/a/b/xhr_send")
            .header("Origin", "test")
            .body("[\"x\"]");
        assert_eq!(
            String::from_utf8(req.to_bytes("h:1")).unwrap(),
            "POST /echo/a/b/xhr_send HTTP/1.1\r\nHost: h:1\r\nOrigin: test\r\n\
             Content-Length: 5\r\n\r\n[\"x\"]"
        );
        let req = Request::new("POST", "/x").without_content_length();
        assert_eq!(
            String::from_utf8(req.to_bytes("h")).unwrap(),
            "POST /x HTTP/1.1\r\nHost: h\r\n\r\n"
        );
        let req = Request::new("GET", "/").version("HTTP/1.0");
        assert_eq!(
            String::from_utf8(req.to_bytes("h")).unwrap(),
            "GET / HTTP/1.0\r\nHost: h\r\n\r\n"
        );
    }

    #[test]
    fn head_parsing() {
        let head = parse_head(
            b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, POST\r\nX-A:  b \r\nset-cookie: a\r\nSet-Cookie: b",
        )
        .unwrap();
        assert_eq!(head.status, 405);
        assert_eq!(head.reason, "Method Not Allowed");
        assert_eq!(head.header("allow"), Some("GET, POST"));
        assert_eq!(head.header("x-a"), Some("b"));
        assert_eq!(head.header_all("SET-COOKIE"), vec!["a", "b"]);
        assert!(parse_head(b"HTTP/1.1 20 OK").is_err());
        assert!(parse_head(b"HTTP/1.1 +20 OK").is_err());
        // obs-text in a value is a field like another; a name must be a token.
        let head =
            parse_head(b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: http://\xff").unwrap();
        assert_eq!(
            head.header("access-control-allow-origin"),
            Some("http://\u{fffd}")
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\xff: x").is_err());
        for (fields, valid) in [
            ("Content-Length: 5", Some(5)),
            ("Content-Length: +5", None),
            ("Content-Length: 5\r\nContent-Length: 5", Some(5)),
            ("Content-Length: 5\r\nContent-Length: 6", None),
        ] {
            let head = parse_head(format!("HTTP/1.1 200 OK\r\n{fields}").as_bytes()).unwrap();
            let length = head.content_length().unwrap().ok();
            assert_eq!(length, valid, "{fields}");
        }
        assert!(parse_head(b"FOO 200 OK").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nnocolon").is_err());
        let head = parse_head(b"HTTP/1.0 204").unwrap();
        assert_eq!(head.reason, "");
    }

    #[test]
    fn body_kinds() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked").unwrap();
        assert_eq!(h.body_kind("GET").unwrap(), BodyKind::Chunked);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 19").unwrap();
        assert_eq!(h.body_kind("GET").unwrap(), BodyKind::Length(19));
        assert_eq!(h.body_kind("HEAD").unwrap(), BodyKind::None);
        let h = parse_head(b"HTTP/1.1 200 OK").unwrap();
        assert_eq!(h.body_kind("GET").unwrap(), BodyKind::Close);
        assert_eq!(h.body_kind("OPTIONS").unwrap(), BodyKind::None);
        let h = parse_head(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5").unwrap();
        assert_eq!(h.body_kind("GET").unwrap(), BodyKind::None);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3").unwrap();
        assert_eq!(h.body_kind("OPTIONS").unwrap(), BodyKind::Length(3));
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x").unwrap();
        assert!(h.body_kind("GET").is_err());
    }

    #[test]
    fn chunks_are_returned_one_by_one() {
        let mut c = conn(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              2\r\no\n\r\n7;ext=1\r\na[\"x\"]\n\r\n0\r\nX-Trailer: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        );
        let head = c.read_head().unwrap();
        assert!(head.is_chunked());
        assert_eq!(c.read_chunk().unwrap(), b"o\n");
        assert_eq!(c.read_chunk().unwrap(), b"a[\"x\"]\n");
        assert_eq!(c.read_chunk().unwrap(), b"");
        // Keep-alive: the next response follows on the same connection.
        let r = c.read_response("POST").unwrap();
        assert_eq!(r.status(), 204);
        assert!(r.body.is_empty());
    }

    #[test]
    fn bad_chunks_are_errors() {
        let mut c = conn(b"zz\r\n");
        assert!(c.read_chunk().is_err());
        let mut c = conn(b"2\r\nabXY");
        assert!(c.read_chunk().is_err());
        let mut c = conn(b"5\r\nab");
        assert!(c.read_chunk().is_err());
        // A sign is not a hex digit, though `from_str_radix` takes one.
        let mut c = conn(b"+2\r\nab\r\n");
        assert!(c.read_chunk().is_err());
    }

    #[test]
    fn content_length_and_close_delimited_bodies() {
        let mut c =
            conn(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.0 200 OK\r\n\r\nrest");
        let r = c.read_response("GET").unwrap();
        assert_eq!(r.body, b"abc");
        assert_eq!(r.kind, BodyKind::Length(3));
        let r = c.read_response("GET").unwrap();
        assert_eq!(r.body, b"rest");
        assert_eq!(r.kind, BodyKind::Close);
        assert!(c.is_closed().unwrap());
    }

    #[test]
    fn truncated_head_is_an_error() {
        let mut c = conn(b"HTTP/1.1 200 OK\r\nContent-");
        let e = c.read_head().unwrap_err();
        assert!(e.0.contains("inside the response head"), "{e}");
        let mut c = conn(b"");
        assert!(c.read_head().is_err());
    }

    #[test]
    fn exact_reads() {
        let mut c = conn(b"hhhho\n");
        assert_eq!(c.read_exact_bytes(4).unwrap(), b"hhhh");
        assert_eq!(c.read_exact_bytes(2).unwrap(), b"o\n");
        assert!(c.read_exact_bytes(1).is_err());
    }
}
