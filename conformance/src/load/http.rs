//! A small keep-alive HTTP/1.1 client on a tokio `TcpStream`, for the HTTP transports.
//!
//! It writes one request at a time and reads the response head, then the body piece by
//! piece as it arrives (`Content-Length`, chunked, or until close), so streaming
//! responses can be consumed frame by frame.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::LoadError;

/// Largest response head accepted (bytes).
const MAX_HEAD: usize = 64 * 1024;
/// Largest chunk-size or trailer line accepted (bytes).
const MAX_LINE: usize = 4096;
/// Read size.
const READ: usize = 16 * 1024;

/// How the body of the current response is framed, and how much of it is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// No response body being read.
    Done,
    /// `Content-Length`: bytes left.
    Length(usize),
    /// Chunked: bytes left in the current chunk (0: a chunk-size line comes next).
    Chunk(usize),
    /// Chunked: the CRLF after a chunk's data comes next.
    ChunkEnd,
    /// Until the server closes the connection.
    Close,
}

/// The status line and framing-relevant headers of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Whether the connection can carry another request after this response.
    pub keep_alive: bool,
}

/// One client connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
    body: Body,
    reusable: bool,
    host: String,
}

impl Conn {
    /// Connects to `addr` (TCP_NODELAY), sending `host` as the `Host` header.
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        timeout: Duration,
    ) -> Result<Conn, LoadError> {
        let stream = super::connect_tcp(addr, timeout).await?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(READ),
            pos: 0,
            body: Body::Done,
            reusable: true,
            host: host.to_owned(),
        })
    }

    /// Whether another request can be sent on this connection.
    pub fn reusable(&self) -> bool {
        self.reusable && self.body == Body::Done
    }

    /// Writes a request (with `Content-Length` when there is a body, or for POST) and
    /// reads the response head. The body is then read with [`Conn::body_piece`].
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Head, LoadError> {
        if !self.reusable() {
            return Err(LoadError::new("http", "connection not reusable"));
        }
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        if let Some(b) = body {
            req.push_str("Content-Type: text/plain;charset=UTF-8\r\n");
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        } else if method == "POST" {
            req.push_str("Content-Length: 0\r\n");
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b);
        }
        self.stream
            .write_all(&bytes)
            .await
            .map_err(|e| LoadError::io("write", &e))?;
        self.read_head(method == "HEAD").await
    }

    async fn fill(&mut self) -> Result<usize, LoadError> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > READ {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ, 0);
        let r = self.stream.read(&mut self.buf[len..]).await;
        match r {
            Ok(n) => {
                self.buf.truncate(len + n);
                Ok(n)
            }
            Err(e) => {
                self.buf.truncate(len);
                self.reusable = false;
                Err(LoadError::io("read", &e))
            }
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    async fn read_head(&mut self, head_request: bool) -> Result<Head, LoadError> {
        loop {
            let end = loop {
                if let Some(i) = find(self.available(), b"\r\n\r\n") {
                    break i;
                }
                if self.available().len() > MAX_HEAD {
                    self.reusable = false;
                    return Err(LoadError::new("http", "response head too large"));
                }
                if self.fill().await? == 0 {
                    self.reusable = false;
                    return Err(LoadError::new("http", "connection closed before response"));
                }
            };
            let text = String::from_utf8_lossy(&self.available()[..end]).into_owned();
            self.pos += end + 4;
            let parsed = parse_head(&text, head_request).inspect_err(|_| self.reusable = false)?;
            if (100..200).contains(&parsed.0.status) {
                continue; // interim response
            }
            let (head, body) = parsed;
            self.body = body;
            self.reusable = head.keep_alive;
            return Ok(head);
        }
    }

    /// The next piece of the current response's body as it arrives; `None` at its end.
    pub async fn body_piece(&mut self) -> Result<Option<Vec<u8>>, LoadError> {
        loop {
            match self.body {
                Body::Done => return Ok(None),
                Body::Length(0) => {
                    self.body = Body::Done;
                    return Ok(None);
                }
                Body::Length(left) => {
                    let piece = self.take(left).await?;
                    self.body = Body::Length(left - piece.len());
                    return Ok(Some(piece));
                }
                Body::ChunkEnd => {
                    let line = self.line().await?;
                    if !line.is_empty() {
                        self.reusable = false;
                        self.body = Body::Done;
                        return Err(LoadError::new("http", "no CRLF after chunk data"));
                    }
                    self.body = Body::Chunk(0);
                }
                Body::Chunk(0) => {
                    let line = self.line().await?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16).map_err(|_| {
                        self.reusable = false;
                        self.body = Body::Done;
                        LoadError::new("http", format!("bad chunk size {hex:?}"))
                    })?;
                    if size == 0 {
                        // Trailer section up to an empty line.
                        while !self.line().await?.is_empty() {}
                        self.body = Body::Done;
                        return Ok(None);
                    }
                    self.body = Body::Chunk(size);
                }
                Body::Chunk(left) => {
                    let piece = self.take(left).await?;
                    self.body = if piece.len() == left {
                        Body::ChunkEnd
                    } else {
                        Body::Chunk(left - piece.len())
                    };
                    return Ok(Some(piece));
                }
                Body::Close => {
                    if self.available().is_empty() {
                        match self.fill().await {
                            Ok(0) => {
                                self.body = Body::Done;
                                self.reusable = false;
                                return Ok(None);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                self.body = Body::Done;
                                return Err(e);
                            }
                        }
                    }
                    let piece = self.available().to_vec();
                    self.pos = self.buf.len();
                    return Ok(Some(piece));
                }
            }
        }
    }

    /// Up to `left` (> 0) body bytes, reading when none are buffered.
    async fn take(&mut self, left: usize) -> Result<Vec<u8>, LoadError> {
        if self.available().is_empty() && self.fill().await? == 0 {
            self.reusable = false;
            self.body = Body::Done;
            return Err(LoadError::new("http", "connection closed inside a body"));
        }
        let n = left.min(self.available().len());
        let piece = self.available()[..n].to_vec();
        self.pos += n;
        Ok(piece)
    }

    /// The whole remaining body, up to `limit` bytes.
    pub async fn read_body(&mut self, limit: usize) -> Result<Vec<u8>, LoadError> {
        let mut out = Vec::new();
        while let Some(p) = self.body_piece().await? {
            out.extend_from_slice(&p);
            if out.len() > limit {
                self.reusable = false;
                return Err(LoadError::new("http", "response body too large"));
            }
        }
        Ok(out)
    }

    async fn line(&mut self) -> Result<String, LoadError> {
        loop {
            if let Some(i) = find(self.available(), b"\r\n") {
                let line = String::from_utf8_lossy(&self.available()[..i]).into_owned();
                self.pos += i + 2;
                return Ok(line);
            }
            if self.available().len() > MAX_LINE {
                self.reusable = false;
                self.body = Body::Done;
                return Err(LoadError::new("http", "chunk line too long"));
            }
            if self.fill().await? == 0 {
                self.reusable = false;
                self.body = Body::Done;
                return Err(LoadError::new(
                    "http",
                    "connection closed inside chunked body",
                ));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a response head (without the final empty line) into its status, keep-alive
/// and body framing.
fn parse_head(text: &str, head_request: bool) -> Result<(Head, Body), LoadError> {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| {
            LoadError::new(
                "http",
                format!("bad status line {:?}", super::track::short(status_line)),
            )
        })?;
    let mut keep_alive = version == "HTTP/1.1";
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(LoadError::new("http", "bad header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length =
                Some(value.parse::<usize>().map_err(|_| {
                    LoadError::new("http", format!("bad Content-Length {value:?}"))
                })?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let t = token.trim();
                if t.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let body = if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        Body::Done
    } else if chunked {
        Body::Chunk(0)
    } else if let Some(n) = length {
        Body::Length(n)
    } else {
        keep_alive = false;
        Body::Close
    };
    Ok((Head { status, keep_alive }, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn heads() {
        let (h, b) = parse_head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: x",
            false,
        )
        .expect("valid head");
        assert_eq!(
            h,
            Head {
                status: 200,
                keep_alive: true
            }
        );
        assert_eq!(b, Body::Chunk(0));
        let (h, b) =
            parse_head("HTTP/1.1 204 No Content\r\nConnection: close", false).expect("valid head");
        assert_eq!(
            h,
            Head {
                status: 204,
                keep_alive: false
            }
        );
        assert_eq!(b, Body::Done);
        let (h, b) = parse_head("HTTP/1.0 200 OK\r\nContent-Length: 5", false).expect("valid");
        assert!(!h.keep_alive);
        assert_eq!(b, Body::Length(5));
        let (h, b) = parse_head("HTTP/1.1 200 OK", false).expect("valid");
        assert!(!h.keep_alive);
        assert_eq!(b, Body::Close);
        assert!(parse_head("SPDY 200", false).is_err());
        assert!(parse_head("HTTP/1.1 abc", false).is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\nContent-Length: x", false).is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\nnocolon", false).is_err());
    }

    /// Serves canned bytes to one connection, in the given pieces.
    async fn serve(pieces: Vec<&'static [u8]>) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                for p in pieces {
                    let _ = s.write_all(p).await;
                    let _ = s.flush().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // Keep the connection open a little for keep-alive checks.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn chunked_stream_in_odd_pieces() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\no\n\r",
            b"\n6\r\na[\"x\"]",
            b"\r\n0\r\n\r\n",
        ])
        .await;
        let mut c = Conn::connect(addr, "h", Duration::from_secs(2))
            .await
            .expect("connect");
        let head = c.request("POST", "/x", None).await.expect("head");
        assert_eq!(head.status, 200);
        let body = c.read_body(1024).await.expect("body");
        assert_eq!(body, b"o\na[\"x\"]");
        assert!(c.reusable());
    }

    #[tokio::test]
    async fn length_and_close_bodies() {
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"]).await;
        let mut c = Conn::connect(addr, "h", Duration::from_secs(2))
            .await
            .expect("connect");
        c.request("GET", "/", None).await.expect("head");
        assert_eq!(c.read_body(10).await.expect("body"), b"abc");
        assert!(c.reusable());

        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nab",
            b"cd",
        ])
        .await;
        let mut c = Conn::connect(addr, "h", Duration::from_secs(2))
            .await
            .expect("connect");
        c.request("GET", "/", None).await.expect("head");
        assert_eq!(c.read_body(10).await.expect("body"), b"abcd");
        assert!(!c.reusable());
    }

    #[tokio::test]
    async fn malformed_chunks_are_errors() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ])
        .await;
        let mut c = Conn::connect(addr, "h", Duration::from_secs(2))
            .await
            .expect("connect");
        c.request("GET", "/", None).await.expect("head");
        assert!(c.read_body(10).await.is_err());
        assert!(!c.reusable());
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"]).await;
        let mut c = Conn::connect(addr, "h", Duration::from_secs(2))
            .await
            .expect("connect");
        c.request("GET", "/", None).await.expect("head");
        assert!(c.read_body(10).await.is_err(), "truncated body");
    }
}
