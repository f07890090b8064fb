//! The check framework: what a check is, how it fails, and the context it runs in.

use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{self, BodyKind, Conn, Head, Request, Response};
use crate::tls::ClientStream;
use crate::util::{diff, esc, esc_short, random_session_id};

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `true` when the check could not run (e.g. a timing check without the delay given).
    pub skip: bool,
    /// Human-readable reason, with the differing bytes escaped.
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl From<http::Error> for Failure {
    fn from(e: http::Error) -> Self {
        fail(e.0)
    }
}

impl From<String> for Failure {
    fn from(reason: String) -> Self {
        fail(reason)
    }
}

impl From<&str> for Failure {
    fn from(reason: &str) -> Self {
        fail(reason)
    }
}

/// A failed check with this reason.
pub fn fail(reason: impl Into<String>) -> Failure {
    Failure {
        skip: false,
        reason: reason.into(),
    }
}

/// A skipped check with this reason.
pub fn skip(reason: impl Into<String>) -> Failure {
    Failure {
        skip: true,
        reason: reason.into(),
    }
}

/// What a check returns: `Ok(())` is a pass.
pub type Outcome = Result<(), Failure>;

/// Adds a step description in front of a failure reason.
pub trait Step<T> {
    /// Prefixes the failure reason with `what: `.
    fn step(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: Into<Failure>> Step<T> for Result<T, E> {
    fn step(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| {
            let mut f: Failure = e.into();
            f.reason = format!("{what}: {}", f.reason);
            f
        })
    }
}

/// Fails with `reason` unless `cond`.
pub fn ensure(cond: bool, reason: impl FnOnce() -> String) -> Outcome {
    if cond { Ok(()) } else { Err(fail(reason())) }
}

/// Fails unless the two byte strings are equal, showing both (escaped).
pub fn expect_eq(what: &str, expected: impl AsRef<[u8]>, got: impl AsRef<[u8]>) -> Outcome {
    let (e, g) = (expected.as_ref(), got.as_ref());
    ensure(e == g, || format!("{what}: {}", diff(e, g)))
}

/// Fails unless the response has this status (the body is shown otherwise).
pub fn expect_status(what: &str, r: &Response, status: u16) -> Outcome {
    ensure(r.status() == status, || {
        format!(
            "{what}: expected status {status}, got {} (body \"{}\")",
            r.head.summary(),
            esc_short(&r.body, 120)
        )
    })
}

/// Fails unless the head has this status.
pub fn expect_head_status(what: &str, h: &Head, status: u16) -> Outcome {
    ensure(h.status == status, || {
        format!("{what}: expected status {status}, got {}", h.summary())
    })
}

/// Fails unless status and body are exactly as given.
pub fn expect_response(what: &str, r: &Response, status: u16, body: &[u8]) -> Outcome {
    expect_status(what, r, status)?;
    expect_eq(&format!("{what}: body"), body, &r.body)
}

/// The value of a header a check expects once: `None` when absent, a failure when it comes
/// in more than one field (two `Access-Control-Allow-Origin` or `Cache-Control` fields are
/// not the one value a rule asks for, even if the first is).
pub fn single_header<'h>(what: &str, h: &'h Head, name: &str) -> Result<Option<&'h str>, Failure> {
    match h.header_all(name).as_slice() {
        [] => Ok(None),
        [v] => Ok(Some(v)),
        many => Err(fail(format!(
            "{what}: header {name} must come once, got {} fields: {}",
            many.len(),
            many.iter()
                .map(|v| format!("\"{}\"", esc(v.as_bytes())))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Fails unless the header is present, in one field, with exactly this value.
pub fn expect_header(what: &str, h: &Head, name: &str, value: &str) -> Outcome {
    match single_header(what, h, name)? {
        Some(v) => expect_eq(&format!("{what}: header {name}"), value, v),
        None => Err(fail(format!(
            "{what}: header {name} missing (expected \"{}\")",
            esc(value.as_bytes())
        ))),
    }
}

/// Fails if the header is present.
pub fn expect_no_header(what: &str, h: &Head, name: &str) -> Outcome {
    match h.header(name) {
        Some(v) => Err(fail(format!(
            "{what}: header {name} must be absent, got \"{}\"",
            esc(v.as_bytes())
        ))),
        None => Ok(()),
    }
}

/// Fails unless Content-Type, in one field, equals `expected` (spaces deleted).
pub fn expect_content_type(what: &str, h: &Head, expected: &str) -> Outcome {
    match single_header(what, h, "content-type")? {
        Some(v) => expect_eq(
            &format!("{what}: Content-Type (spaces removed)"),
            expected,
            v.replace(' ', ""),
        ),
        None => Err(fail(format!(
            "{what}: Content-Type missing (expected \"{expected}\")"
        ))),
    }
}

/// Whether a check needs a server delay to be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Runs always.
    Nothing,
    /// Needs the heartbeat delay.
    Heartbeat,
    /// Needs the disconnect delay.
    Disconnect,
}

/// The body of a check.
pub type CheckFn = Arc<dyn Fn(&Ctx) -> Outcome + Send + Sync>;

/// One named check of one protocol rule.
#[derive(Clone)]
pub struct Check {
    /// Unique name: section and rule, e.g. `s7_1_2010_second_receiver`.
    pub name: String,
    /// The PROTOCOL.md section it tests, e.g. `7.1`.
    pub section: &'static str,
    /// One line describing the rule.
    pub summary: String,
    /// Which server delay it needs.
    pub needs: Needs,
    /// The check itself.
    pub run: CheckFn,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("section", &self.section)
            .finish()
    }
}

impl Check {
    /// A check that always runs.
    pub fn new(
        name: impl Into<String>,
        section: &'static str,
        summary: impl Into<String>,
        run: impl Fn(&Ctx) -> Outcome + Send + Sync + 'static,
    ) -> Self {
        Check {
            name: name.into(),
            section,
            summary: summary.into(),
            needs: Needs::Nothing,
            run: Arc::new(run),
        }
    }

    /// Marks the check as needing a server delay.
    pub fn needs(mut self, needs: Needs) -> Self {
        self.needs = needs;
        self
    }
}

/// Everything a check needs to reach the server under test.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `host:port` of the server.
    pub host: String,
    /// Path prefix of the base URL (empty or starting with `/`, no trailing `/`).
    pub prefix: String,
    /// TLS client settings when the base URL is `https://`.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Connect/read/write timeout of each socket operation.
    pub io_timeout: Duration,
    /// Heartbeat delay the server is configured with, if known.
    pub heartbeat: Option<Duration>,
    /// Disconnect delay the server is configured with, if known.
    pub disconnect: Option<Duration>,
    /// Rounds of abort-then-reconnect each §7.1.6 abort stress check makes.
    pub abort_rounds: usize,
}

/// The services the suite expects (§1).
pub mod service {
    /// Echo, response_limit 4096.
    pub const ECHO: &str = "/echo";
    /// Closes every session on open with 3000 "Go away!".
    pub const CLOSE: &str = "/close";
    /// Echo without the websocket transport.
    pub const WS_OFF: &str = "/disabled_websocket_echo";
    /// Echo with JSESSIONID cookies.
    pub const COOKIE: &str = "/cookie_needed_echo";
}

/// A fresh session under a service: paths `P/000/<random id>/<transport>`.
#[derive(Debug, Clone)]
pub struct Session {
    /// `prefix + service + /000/ + id`.
    pub base: String,
    /// The random session id.
    pub id: String,
}

impl Session {
    /// Path of a transport endpoint of this session.
    pub fn url(&self, transport: &str) -> String {
        format!("{}/{transport}", self.base)
    }
}

/// A streaming response being read chunk by chunk.
#[derive(Debug)]
pub struct Stream {
    /// The connection.
    pub conn: Conn<ClientStream>,
    /// The response head.
    pub head: Head,
    /// The transport's heartbeat chunk, which [`expect_chunk`](Stream::expect_chunk)
    /// passes over unless it expects it: a server may send one whenever its heartbeat
    /// delay passes, and a slow check must not fail it. Not at the end of a stream:
    /// [`expect_end`](Stream::expect_end) takes none.
    pub heartbeat: Option<Vec<u8>>,
    /// The server's heartbeat delay, if known: how long past the read timeout heartbeats
    /// are passed over before a read gives up (see [`patience`]).
    pub heartbeat_delay: Option<Duration>,
}

/// How long a read that passes over heartbeats (or pings) may wait for the frame it
/// expects: the read timeout, plus one heartbeat delay for a heartbeat written just before
/// that frame (one more read timeout when the delay is not known). A server that keeps
/// heartbeating and never sends the frame fails after this, not at the runner's timeout.
pub fn patience(read_timeout: Option<Duration>, heartbeat: Option<Duration>) -> Duration {
    let read = read_timeout.unwrap_or(Duration::from_secs(3));
    read + heartbeat.unwrap_or(read)
}

/// The heartbeat chunk of the streaming transport `path` asks for (§7.1.3, §8).
pub fn heartbeat_chunk(path: &str) -> Option<Vec<u8>> {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    if path.ends_with("/xhr_streaming") {
        return Some(b"h\n".to_vec());
    }
    if path.ends_with("/eventsource") {
        return Some(b"data: h\r\n\r\n".to_vec());
    }
    if path.ends_with("/htmlfile") {
        // Every htmlfile frame calls the page's own `p`, not the callback (§8).
        return Some(b"<script>\np(\"h\");\n</script>\r\n".to_vec());
    }
    None
}

impl Stream {
    /// Reads the next chunk (empty = end of stream); the response must be chunked, with
    /// no Content-Length.
    pub fn chunk(&mut self) -> Result<Vec<u8>, Failure> {
        // §10: streams are chunked with no Content-Length (which RFC 9112 §6.2 forbids
        // beside Transfer-Encoding anyway).
        if !self.head.is_chunked() || self.head.has("content-length") {
            return Err(fail(format!(
                "streaming response must be chunked with no Content-Length (Transfer-Encoding {:?}, Content-Length {:?})",
                self.head.header("transfer-encoding"),
                self.head.header("content-length")
            )));
        }
        Ok(self.conn.read_chunk()?)
    }

    /// The next chunk, past heartbeats unless `expected` (the chunk awaited, also named in
    /// a failure) is one, for at most [`patience`]. For a check that accepts more than one
    /// chunk; [`expect_chunk`](Stream::expect_chunk) compares with the one expected.
    pub fn chunk_past_heartbeats(
        &mut self,
        what: &str,
        expected: &[u8],
    ) -> Result<Vec<u8>, Failure> {
        let start = Instant::now();
        let limit = patience(self.conn.read_timeout(), self.heartbeat_delay);
        let mut skipped = 0usize;
        loop {
            let got = self.chunk().step(what)?;
            match &self.heartbeat {
                Some(heartbeat) if got == *heartbeat && expected != heartbeat.as_slice() => {
                    skipped += 1;
                    if start.elapsed() > limit {
                        return Err(fail(format!(
                            "{what}: only heartbeats ({skipped}) for {} ms, never \"{}\"",
                            start.elapsed().as_millis(),
                            esc_short(expected, 120)
                        )));
                    }
                }
                _ => return Ok(got),
            }
        }
    }

    /// Fails unless the next chunk (heartbeats aside) is exactly `expected`.
    pub fn expect_chunk(&mut self, what: &str, expected: impl AsRef<[u8]>) -> Outcome {
        let expected = expected.as_ref();
        let got = self.chunk_past_heartbeats(what, expected)?;
        expect_eq(what, expected, got)
    }

    /// Fails unless the stream ends now: the next chunk is the terminating one, a heartbeat
    /// included (§10: a stream ends with the zero-length chunk right after the close frame
    /// or the frame that reached the limit).
    pub fn expect_end(&mut self, what: &str) -> Outcome {
        let got = self.chunk().step(what)?;
        ensure(got.is_empty(), || {
            format!(
                "{what}: expected the end of the stream (the zero-length chunk, §10), got another chunk \"{}\"",
                esc_short(&got, 120)
            )
        })
    }

    /// Sets the read timeout for the next reads.
    pub fn set_read_timeout(&self, d: Duration) -> Outcome {
        Ok(self.conn.set_read_timeout(d)?)
    }
}

impl Ctx {
    /// Full path of `p` under the base URL.
    pub fn path(&self, p: &str) -> String {
        format!("{}{p}", self.prefix)
    }

    /// `ws://host:port` (`wss://` over TLS) + prefix + `p`.
    pub fn ws_url(&self, p: &str) -> String {
        format!("{}://{}{}{p}", self.ws_scheme(), self.host, self.prefix)
    }

    /// `ws`, or `wss` over TLS.
    pub fn ws_scheme(&self) -> &'static str {
        if self.tls.is_some() { "wss" } else { "ws" }
    }

    /// A new connection to the server.
    pub fn connect(&self) -> Result<Conn<ClientStream>, Failure> {
        Ok(Conn::connect_with(
            &self.host,
            self.io_timeout,
            self.tls.as_ref(),
        )?)
    }

    /// A fresh random session under `service` (e.g. [`service::ECHO`]).
    pub fn session(&self, service: &str) -> Session {
        let id = random_session_id();
        Session {
            base: format!("{}{service}/000/{id}", self.prefix),
            id,
        }
    }

    /// Sends `req` on a new connection and reads the whole response.
    pub fn request(&self, req: &Request) -> Result<Response, Failure> {
        let mut c = self.connect()?;
        let what = format!("{} {}", req.method, req.path);
        c.roundtrip(req).step(&what)
    }

    /// GET `path` (already including the prefix).
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response, Failure> {
        self.request(&Request::new("GET", path).headers(headers))
    }

    /// POST `body` to `path`.
    pub fn post(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, Failure> {
        self.request(&Request::new("POST", path).headers(headers).body(body))
    }

    /// OPTIONS `path`.
    pub fn options(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response, Failure> {
        self.request(&Request::new("OPTIONS", path).headers(headers))
    }

    /// Sends `req` and reads only the head: for streaming responses.
    pub fn open(&self, req: &Request) -> Result<Stream, Failure> {
        let mut conn = self.connect()?;
        let what = format!("{} {}", req.method, req.path);
        conn.send(req).step(&what)?;
        let head = conn.read_head().step(&what)?;
        Ok(Stream {
            conn,
            head,
            heartbeat: heartbeat_chunk(&req.path),
            heartbeat_delay: self.heartbeat,
        })
    }

    /// Sends `req` without reading anything (a request left pending).
    pub fn send_only(&self, req: &Request) -> Result<Conn<ClientStream>, Failure> {
        let mut conn = self.connect()?;
        conn.send(req)
            .step(&format!("{} {}", req.method, req.path))?;
        Ok(conn)
    }

    /// POST `xhr` on a session.
    pub fn xhr(&self, s: &Session) -> Result<Response, Failure> {
        self.post(&s.url("xhr"), "", &[])
    }

    /// POST `xhr` and require status 200 with exactly `body`.
    pub fn expect_xhr(&self, what: &str, s: &Session, body: &str) -> Outcome {
        let r = self.xhr(s).step(what)?;
        expect_response(what, &r, 200, body.as_bytes())
    }

    /// Opens the session with an xhr poll (`o\n`).
    pub fn open_xhr(&self, s: &Session) -> Outcome {
        self.expect_xhr("opening POST xhr", s, "o\n")
    }

    /// POST `xhr_send` with `body`.
    pub fn xhr_send(&self, s: &Session, body: &str) -> Result<Response, Failure> {
        self.post(&s.url("xhr_send"), body, &[])
    }

    /// POST `xhr_send` and require `204` with an empty body.
    pub fn send_ok(&self, s: &Session, body: &str) -> Outcome {
        let what = format!("POST xhr_send {}", esc_short(body.as_bytes(), 60));
        let r = self.xhr_send(s, body).step(&what)?;
        expect_response(&what, &r, 204, b"")
    }

    /// Opens a POST `xhr_streaming` on a session and reads its head.
    pub fn xhr_streaming(&self, s: &Session, headers: &[(&str, &str)]) -> Result<Stream, Failure> {
        self.open(&Request::new("POST", &s.url("xhr_streaming")).headers(headers))
    }

    /// The heartbeat delay, or a skip.
    pub fn heartbeat(&self) -> Result<Duration, Failure> {
        self.heartbeat
            .ok_or_else(|| skip("heartbeat delay not given (--heartbeat-ms)"))
    }

    /// The disconnect delay, or a skip.
    pub fn disconnect(&self) -> Result<Duration, Failure> {
        self.disconnect
            .ok_or_else(|| skip("disconnect delay not given (--disconnect-ms)"))
    }
}

/// Sleeps for `d`.
pub fn sleep(d: Duration) {
    thread::sleep(d);
}

/// Body kind description for failure messages.
pub fn kind_name(kind: BodyKind) -> &'static str {
    match kind {
        BodyKind::None => "no body",
        BodyKind::Length(_) => "Content-Length",
        BodyKind::Chunked => "chunked",
        BodyKind::Close => "close-delimited",
    }
}

/// Waits until one of two requests sent at once is answered, and swaps them so that
/// `answered` is that one; the other is left `held`. For the receivers of §7.1.2, where the
/// server answers whichever it took second with 2010 at once, in either order.
pub fn first_answered(
    held: &mut Conn<ClientStream>,
    answered: &mut Conn<ClientStream>,
    timeout: Duration,
) -> Outcome {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if answered.has_input().step("concurrent request")? {
            return Ok(());
        }
        if held.has_input().step("concurrent request")? {
            std::mem::swap(held, answered);
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(fail(format!(
                "neither of two concurrent requests answered within {} ms (expected one 2010)",
                timeout.as_millis()
            )));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{Stream, heartbeat_chunk};
    use crate::http::Conn;
    use crate::tls::ClientStream;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// An xhr_streaming response whose server wrote `body` (chunked) and closed, read up to
    /// its head.
    fn canned_stream(body: &[u8]) -> Stream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        server.write_all(body).unwrap();
        drop(server);
        let mut conn = Conn::new(ClientStream::Plain(client), &addr.to_string());
        let head = conn.read_head().unwrap();
        Stream {
            conn,
            head,
            heartbeat: heartbeat_chunk("/echo/000/x/xhr_streaming"),
            heartbeat_delay: Some(Duration::from_millis(100)),
        }
    }

    #[test]
    fn an_expected_header_comes_in_one_field() {
        use super::{expect_content_type, expect_header};
        let head = |fields: &str| {
            crate::http::parse_head(format!("HTTP/1.1 200 OK\r\n{fields}").as_bytes()).unwrap()
        };
        let h = head("Access-Control-Allow-Origin: *");
        assert!(expect_header("t", &h, "access-control-allow-origin", "*").is_ok());
        let h = head("Access-Control-Allow-Origin: *\r\naccess-control-allow-origin: *");
        let e = expect_header("t", &h, "access-control-allow-origin", "*").unwrap_err();
        assert!(e.reason.contains("must come once, got 2 fields"), "{e}");
        let h = head("Content-Type: text/plain\r\nContent-Type: text/plain");
        assert!(expect_content_type("t", &h, "text/plain").is_err());
        assert!(expect_header("t", &head(""), "x", "y").is_err());
    }

    #[test]
    fn a_stream_ends_right_after_its_last_frame() {
        let close = b"13\r\nc[3000,\"Go away!\"]\n\r\n";
        let mut st = canned_stream(&[&close[..], b"0\r\n\r\n"].concat());
        st.expect_chunk("close frame", "c[3000,\"Go away!\"]\n")
            .unwrap();
        st.expect_end("after the close frame").unwrap();
        // A heartbeat between the close frame and the terminating chunk is not passed over.
        let mut st = canned_stream(&[&close[..], b"2\r\nh\n\r\n0\r\n\r\n"].concat());
        st.expect_chunk("close frame", "c[3000,\"Go away!\"]\n")
            .unwrap();
        let e = st.expect_end("after the close frame").unwrap_err();
        assert!(e.reason.contains("got another chunk \"h\\n\""), "{e}");
        // Before the awaited frame, heartbeats are.
        let mut st = canned_stream(&[&b"2\r\nh\n\r\n"[..], &close[..]].concat());
        st.expect_chunk("close frame", "c[3000,\"Go away!\"]\n")
            .unwrap();
    }

    #[test]
    fn each_stream_has_its_heartbeat_chunk() {
        assert_eq!(
            heartbeat_chunk("/echo/000/x/xhr_streaming").as_deref(),
            Some(&b"h\n"[..])
        );
        assert_eq!(
            heartbeat_chunk("/echo/000/x/eventsource").as_deref(),
            Some(&b"data: h\r\n\r\n"[..])
        );
        assert_eq!(
            heartbeat_chunk("/echo/000/x/htmlfile?c=cb").as_deref(),
            Some(&b"<script>\np(\"h\");\n</script>\r\n"[..])
        );
        assert_eq!(heartbeat_chunk("/echo/000/x/xhr"), None);
    }
}
