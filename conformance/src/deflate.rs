//! A small RFC 6455 client with permessage-deflate (RFC 7692), which tungstenite lacks: the
//! upgrade request with an offer, the check of the server's answer (RFC 7692 §7.1, the
//! client's side), masked client frames compressed at will, and the server's frames
//! reassembled and inflated. Sans-IO ([`Codec`]) so the load generator can drive it on
//! tokio; [`DeflateWs`] runs it over a blocking `TcpStream` for the checks and tests.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use crate::tls::ClientStream;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::util::random_u64;

/// What Chromium offers (and Firefox): permessage-deflate, any client window.
pub const CHROMIUM_OFFER: &str = "permessage-deflate; client_max_window_bits";

const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The parameters of a server's answer, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Agreed {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// We must reset our compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server's window, if it said.
    pub server_max_window_bits: Option<u8>,
    /// Our window, if the server limited it.
    pub client_max_window_bits: Option<u8>,
}

/// Checks the server's `Sec-WebSocket-Extensions` answer to `offer` as a client must
/// (RFC 7692 §7.1): one `permessage-deflate` with known parameters, each at most once,
/// values where (and only where) they belong, `client_max_window_bits` only if offered.
pub fn check_answer(answer: &str, offer: &str) -> Result<Agreed, String> {
    let mut extensions = answer.split(',').map(str::trim).filter(|e| !e.is_empty());
    let Some(extension) = extensions.next() else {
        return Err("an empty Sec-WebSocket-Extensions answer".into());
    };
    if let Some(more) = extensions.next() {
        return Err(format!("a second extension in the answer: {more:?}"));
    }
    let mut parts = extension.split(';').map(str::trim);
    if parts.next() != Some("permessage-deflate") {
        return Err(format!("answered {extension:?}, not permessage-deflate"));
    }
    let mut agreed = Agreed::default();
    let mut seen = Vec::new();
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        if seen.contains(&name) {
            return Err(format!("{name} twice in {answer:?}"));
        }
        seen.push(name);
        let bits = |v: Option<&str>| -> Result<u8, String> {
            match v.and_then(|v| v.parse::<u8>().ok()) {
                Some(b @ 8..=15) if !v.is_some_and(|v| v.starts_with('0')) => Ok(b),
                _ => Err(format!("{name} with value {v:?} in {answer:?}")),
            }
        };
        match (name, value) {
            ("server_no_context_takeover", None) => agreed.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => agreed.client_no_context_takeover = true,
            ("server_max_window_bits", v) => agreed.server_max_window_bits = Some(bits(v)?),
            ("client_max_window_bits", v) => {
                if !offer.contains("client_max_window_bits") {
                    return Err("client_max_window_bits answered but not offered".into());
                }
                agreed.client_max_window_bits = Some(bits(v)?);
            }
            _ => return Err(format!("unexpected parameter {param:?} in {answer:?}")),
        }
    }
    Ok(agreed)
}

/// A message or control frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message, and whether it came compressed.
    Text(String, bool),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A close frame.
    Close(Option<(u16, String)>),
}

/// The client side of one connection, sans I/O.
pub struct Codec {
    agreed: Option<Agreed>,
    deflater: Compress,
    inflater: Decompress,
    input: Vec<u8>,
    /// A fragmented message: opcode, compressed, payload so far.
    fragments: Option<(u8, bool, Vec<u8>)>,
    max_message: usize,
    /// Masks come from a xorshift seeded at random.
    mask: u64,
    /// The server's messages inflated within the window it agreed to, when smaller than
    /// 32 KiB: made at the first compressed message, kept while the context is.
    window: Option<Window>,
}

/// A decompressor that holds only the last `2^bits` bytes of output, as a client that
/// asked for `server_max_window_bits` may: a message that refers back further fails.
struct Window {
    inflater: Box<miniz_oxide::inflate::core::DecompressorOxide>,
    /// The output, as a ring of the window's size.
    ring: Vec<u8>,
    at: usize,
}

impl Window {
    fn new(bits: u8) -> Window {
        Window {
            inflater: Box::default(),
            ring: vec![0; 1 << bits],
            at: 0,
        }
    }

    /// Inflates one message's payload (the tail added), bounded by `max` bytes.
    fn inflate(&mut self, payload: &[u8], max: usize) -> Result<Vec<u8>, String> {
        use miniz_oxide::inflate::TINFLStatus;
        use miniz_oxide::inflate::core::{decompress, inflate_flags};
        let input = [payload, &TAIL[..]].concat();
        let mut used = 0;
        let mut out = Vec::new();
        loop {
            // Raw DEFLATE; the stream goes on after the message unless a final block ends it.
            let (status, read, written) = decompress(
                &mut self.inflater,
                &input[used..],
                &mut self.ring,
                self.at,
                inflate_flags::TINFL_FLAG_HAS_MORE_INPUT,
            );
            out.extend_from_slice(&self.ring[self.at..self.at + written]);
            self.at = (self.at + written) & (self.ring.len() - 1);
            used += read;
            if out.len() > max {
                return Err("inflated message too big".into());
            }
            match status {
                TINFLStatus::Done => {
                    *self.inflater = Default::default();
                    return Ok(out);
                }
                TINFLStatus::NeedsMoreInput if used >= input.len() => return Ok(out),
                TINFLStatus::NeedsMoreInput | TINFLStatus::HasMoreOutput
                    if read > 0 || written > 0 => {}
                other => {
                    return Err(format!(
                        "does not inflate within the {}-byte window of server_max_window_bits \
                         (a distance past it, or bad data): {other:?}",
                        self.ring.len()
                    ));
                }
            }
        }
    }
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("agreed", &self.agreed)
            .finish()
    }
}

impl Codec {
    /// A codec for a connection that agreed on `agreed` (or on no extension).
    pub fn new(agreed: Option<Agreed>) -> Codec {
        Codec {
            agreed,
            deflater: Compress::new(Compression::new(6), false),
            inflater: Decompress::new(false),
            input: Vec::new(),
            fragments: None,
            max_message: 64 << 20,
            mask: random_u64() | 1,
            window: None,
        }
    }

    /// What was agreed.
    pub fn agreed(&self) -> Option<Agreed> {
        self.agreed
    }

    /// Appends a masked text frame, compressed (RSV1) when `compress` and deflate was
    /// agreed. A message longer than the window the server gave us
    /// (`client_max_window_bits`) goes uncompressed: compressed on its own, a message
    /// refers back at most its own length.
    pub fn encode_text(&mut self, text: &str, compress: bool, out: &mut Vec<u8>) {
        let fits = self.agreed.is_some_and(|a| {
            a.client_max_window_bits
                .is_none_or(|b| b >= 15 || text.len() <= 1 << b)
        });
        if compress && fits {
            let payload = self.compress(text.as_bytes());
            self.encode_frame(0xC1, &payload, out);
        } else {
            self.encode_frame(0x81, text.as_bytes(), out);
        }
    }

    /// Appends one masked frame whose first byte is `first`.
    pub fn encode_frame(&mut self, first: u8, payload: &[u8], out: &mut Vec<u8>) {
        let mask = self.next_mask();
        encode(first, payload, mask, out);
    }

    /// Compresses one message as the agreement says (RFC 7692 §7.2.1), without the tail.
    /// Under a window smaller than the compressor's 32 KiB, each message is compressed on
    /// its own.
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        if self
            .agreed
            .is_some_and(|a| a.client_max_window_bits.is_some_and(|b| b < 15))
        {
            self.deflater.reset();
        }
        let mut payload = Vec::with_capacity(data.len() / 2 + 64);
        let mut input = data;
        loop {
            let before = self.deflater.total_in();
            if self
                .deflater
                .compress_vec(input, &mut payload, FlushCompress::Sync)
                .is_err()
            {
                break;
            }
            let used = (self.deflater.total_in() - before) as usize;
            input = &input[used.min(input.len())..];
            if input.is_empty() && payload.len() < payload.capacity() {
                break;
            }
            payload.reserve(payload.capacity().max(64));
        }
        if payload.ends_with(&TAIL) {
            payload.truncate(payload.len() - 4);
        }
        if self.agreed.is_none_or(|a| a.client_no_context_takeover) {
            self.deflater.reset();
        }
        payload
    }

    fn next_mask(&mut self) -> [u8; 4] {
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 7;
        self.mask ^= self.mask << 17;
        (self.mask as u32).to_ne_bytes()
    }

    /// Appends a masked close frame.
    pub fn encode_close(&mut self, code: u16, out: &mut Vec<u8>) {
        let mask = self.next_mask();
        encode(0x88, &code.to_be_bytes(), mask, out);
    }

    /// Appends a masked pong.
    pub fn encode_pong(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let mask = self.next_mask();
        encode(0x8A, payload, mask, out);
    }

    /// Bytes read from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// The next whole frame or message from what was fed, if there is one.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        loop {
            let Some((first, payload, used)) = parse(&self.input, self.max_message)? else {
                return Ok(None);
            };
            let payload = payload.to_vec();
            self.input.drain(..used);
            let fin = first & 0x80 != 0;
            let rsv1 = first & 0x40 != 0;
            if first & 0x30 != 0 {
                return Err(format!("reserved bits in {first:#04x}"));
            }
            if rsv1 && self.agreed.is_none() {
                return Err("RSV1 without permessage-deflate".into());
            }
            let opcode = first & 0x0F;
            if opcode >= 8 {
                if !fin {
                    return Err(format!(
                        "a fragmented control frame {first:#04x} (RFC 6455 §5.5)"
                    ));
                }
                if rsv1 {
                    return Err(format!("bad control frame {first:#04x}"));
                }
                return Ok(Some(match opcode {
                    0x8 => Frame::Close(match payload.as_slice() {
                        [] => None,
                        [h, l, reason @ ..] => Some((
                            u16::from_be_bytes([*h, *l]),
                            String::from_utf8(reason.to_vec()).map_err(|_| {
                                format!(
                                    "a close reason that is not UTF-8: \"{}\" (RFC 6455 §5.5.1)",
                                    crate::util::esc(reason)
                                )
                            })?,
                        )),
                        _ => return Err("one-byte close payload".into()),
                    }),
                    0x9 => Frame::Ping(payload),
                    0xA => Frame::Pong(payload),
                    _ => return Err(format!("reserved opcode {opcode}")),
                }));
            }
            let (opcode, compressed, data) = match (opcode, self.fragments.take()) {
                (0, Some((op, compressed, mut data))) => {
                    if rsv1 {
                        return Err("RSV1 on a continuation frame".into());
                    }
                    if data.len() + payload.len() > self.max_message {
                        return Err(format!("a message over {} bytes", self.max_message));
                    }
                    data.extend_from_slice(&payload);
                    (op, compressed, data)
                }
                (0, None) => return Err("continuation without a message".into()),
                (_, Some(_)) => return Err("new message inside a fragmented one".into()),
                (op @ (1 | 2), None) => (op, rsv1, payload),
                (op, _) => return Err(format!("reserved opcode {op}")),
            };
            if !fin {
                self.fragments = Some((opcode, compressed, data));
                continue;
            }
            let data = if compressed {
                self.inflate(&data)?
            } else {
                data
            };
            return Ok(Some(if opcode == 1 {
                let text = String::from_utf8(data).map_err(|_| "text is not UTF-8")?;
                Frame::Text(text, compressed)
            } else {
                Frame::Binary(data)
            }));
        }
    }

    fn inflate(&mut self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let agreed = self.agreed.unwrap_or_default();
        if let Some(bits @ 8..15) = agreed.server_max_window_bits {
            let window = self.window.get_or_insert_with(|| Window::new(bits));
            let out = window.inflate(payload, self.max_message);
            if agreed.server_no_context_takeover || out.is_err() {
                self.window = None;
            }
            return out;
        }
        let mut out = Vec::with_capacity(payload.len() * 4 + 64);
        for mut input in [payload, &TAIL[..]] {
            loop {
                if out.len() == out.capacity() {
                    if out.len() > self.max_message {
                        return Err("inflated message too big".into());
                    }
                    out.reserve(out.capacity().max(1024));
                }
                let before = self.inflater.total_in();
                let status = self
                    .inflater
                    .decompress_vec(input, &mut out, FlushDecompress::Sync)
                    .map_err(|e| format!("inflate: {e}"))?;
                let used = (self.inflater.total_in() - before) as usize;
                input = &input[used.min(input.len())..];
                if status == Status::StreamEnd {
                    self.inflater.reset(false);
                    return Ok(out);
                }
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        if self.agreed.is_some_and(|a| a.server_no_context_takeover) {
            self.inflater.reset(false);
        }
        Ok(out)
    }
}

/// A server frame: its first byte, its payload, and the bytes it took.
type Parsed<'a> = (u8, &'a [u8], usize);

/// One server frame at the start of `input`. Refused from its header, before anything is
/// read towards the length it claims: a length not in its shortest form or a 64-bit one
/// with its top bit set (RFC 6455 §5.2), a control frame over 125 bytes (RFC 6455 §5.5),
/// and a frame longer than `max`.
fn parse(input: &[u8], max: usize) -> Result<Option<Parsed<'_>>, String> {
    let [first, second, ..] = *input else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err("masked server frame".into());
    }
    let (len, at): (u64, usize) = match second & 0x7F {
        126 => match input.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match input.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().map_err(|_| "length")?), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Err(format!(
            "a 64-bit frame length with its most significant bit set ({len:#x}; RFC 6455 §5.2)"
        ));
    }
    let shortest = match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    if at != shortest {
        return Err(format!(
            "a frame length of {len} in {} bytes, not the minimal {} (RFC 6455 §5.2)",
            at - 2,
            shortest - 2
        ));
    }
    if first & 0x08 != 0 && len > 125 {
        return Err(format!(
            "a control frame ({first:#04x}) of {len} bytes: at most 125 (RFC 6455 §5.5)"
        ));
    }
    let len = match usize::try_from(len) {
        Ok(len) if len <= max => len,
        _ => return Err(format!("a frame of {len} bytes (over {max})")),
    };
    match input.get(at..at + len) {
        Some(payload) => Ok(Some((first, payload, at + len))),
        None => Ok(None),
    }
}

/// Appends one masked client frame.
fn encode(first: u8, payload: &[u8], mask: [u8; 4], out: &mut Vec<u8>) {
    out.push(first);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// The upgrade request for `path` on `host`, offering `offer` (if any).
pub fn upgrade_request(host: &str, path: &str, offer: Option<&str>) -> String {
    let key = crate::util::random_u64().to_be_bytes();
    let key = base64(&[key, key].concat()[..16]);
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    );
    if let Some(offer) = offer {
        request.push_str(&format!("Sec-WebSocket-Extensions: {offer}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// A response head: status, headers (names lowercased), and the bytes it took.
pub type Head = (u16, Vec<(String, String)>, usize);

/// A response head at the start of `input`; `None` until all of it is there.
pub fn parse_head(input: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&input[..end]);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Some((status, headers, end + 4)))
}

/// The value of header `name` (lowercase), all fields joined with `, `.
pub fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        for _ in chunk.len()..3 {
            out.push('=');
        }
    }
    out
}

/// A blocking client connection with [`Codec`], counting the bytes on the wire.
#[derive(Debug)]
pub struct DeflateWs {
    stream: ClientStream,
    codec: Codec,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    pub answer: Option<String>,
    /// Bytes read after the handshake.
    pub bytes_in: u64,
    /// Bytes written after the handshake.
    pub bytes_out: u64,
    /// The server's heartbeat delay, if known: how long past the read timeout heartbeats
    /// and pings are passed over (see [`patience`](crate::check::patience)).
    pub heartbeat: Option<Duration>,
    /// A SockJS WebSocket, whose text `h` is a heartbeat that [`recv_text`](Self::recv_text)
    /// passes over (`true`, as connected), or a raw one (§9.3), whose every text is a
    /// message: a heartbeat there is an error the reader must see.
    pub sockjs: bool,
}

impl DeflateWs {
    /// Connects to `addr`, upgrades `path` offering `offer`, and checks the answer. A
    /// server that answers without the extension gives a connection without it.
    pub fn connect(
        addr: &str,
        path: &str,
        offer: Option<&str>,
        timeout: Duration,
    ) -> Result<DeflateWs, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_nodelay(true))
            .map_err(|e| e.to_string())?;
        DeflateWs::over(ClientStream::Plain(stream), addr, path, offer)
    }

    /// [`connect`](DeflateWs::connect) over a connection made already (TLS, for one),
    /// to the server at `addr`.
    pub fn over(
        mut stream: ClientStream,
        addr: &str,
        path: &str,
        offer: Option<&str>,
    ) -> Result<DeflateWs, String> {
        stream
            .write_all(upgrade_request(addr, path, offer).as_bytes())
            .map_err(|e| format!("write the upgrade: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let (status, headers, used) = loop {
            if let Some(head) = parse_head(&buf)? {
                break head;
            }
            if buf.len() > crate::http::MAX_HEAD {
                return Err(format!("an upgrade response head over {} bytes", buf.len()));
            }
            match stream.read(&mut chunk) {
                Ok(0) => return Err("closed before the upgrade response".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read the upgrade response: {e}")),
            }
        };
        if status != 101 {
            return Err(format!("upgrade answered {status}"));
        }
        let answer = header(&headers, "sec-websocket-extensions");
        let agreed = match (&answer, offer) {
            (Some(answer), Some(offer)) => Some(check_answer(answer, offer)?),
            (Some(answer), None) => return Err(format!("extension {answer:?} never offered")),
            (None, _) => None,
        };
        let mut codec = Codec::new(agreed);
        codec.feed(&buf[used..]);
        Ok(DeflateWs {
            stream,
            codec,
            answer,
            bytes_in: (buf.len() - used) as u64,
            bytes_out: 0,
            heartbeat: None,
            sockjs: true,
        })
    }

    /// What was agreed (`None`: no extension).
    pub fn agreed(&self) -> Option<Agreed> {
        self.codec.agreed()
    }

    /// Sends a text message, compressed if `compress` and agreed.
    pub fn send(&mut self, text: &str, compress: bool) -> io::Result<()> {
        let mut out = Vec::new();
        self.codec.encode_text(text, compress, &mut out);
        self.write(&out)
    }

    /// Sends one masked frame whose first byte (FIN, RSV bits, opcode) is `first`, as it
    /// is: fragments, control frames and frames the protocol forbids alike.
    pub fn send_frame(&mut self, first: u8, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::new();
        self.codec.encode_frame(first, payload, &mut out);
        self.write(&out)
    }

    /// Sends raw bytes (for hostile frames).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes_out += bytes.len() as u64;
        self.stream.write_all(bytes)
    }

    /// Sends a close frame.
    pub fn close(&mut self, code: u16) -> io::Result<()> {
        let mut out = Vec::new();
        self.codec.encode_close(code, &mut out);
        self.write(&out)
    }

    /// The next message or control frame (pings are answered and returned too);
    /// `Ok(None)` once the server closed the connection.
    pub fn recv(&mut self) -> Result<Option<Frame>, String> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self.codec.next_frame()? {
                if let Frame::Ping(payload) = &frame {
                    let mut out = Vec::new();
                    self.codec.encode_pong(payload, &mut out);
                    let _ = self.write(&out);
                }
                return Ok(Some(frame));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    self.bytes_in += n as u64;
                    self.codec.feed(&chunk[..n]);
                }
                // However the connection ended: a reset, or (over TLS, whose reads also
                // write) a pipe broken by the server's close, or no close_notify.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// A count of heartbeats and control frames passed over, which fails once they alone
    /// have come for longer than [`patience`](crate::check::patience).
    pub fn skipping(&self) -> Skipping {
        Skipping {
            start: std::time::Instant::now(),
            limit: crate::check::patience(
                self.stream.tcp().read_timeout().ok().flatten(),
                self.heartbeat,
            ),
            count: 0,
        }
    }

    /// The next text message, with whether it came compressed. Pings, and on a SockJS
    /// WebSocket ([`sockjs`](Self::sockjs)) heartbeats `h`, are passed over for at most
    /// [`patience`](crate::check::patience).
    pub fn recv_text(&mut self) -> Result<(String, bool), String> {
        let mut skipped = self.skipping();
        loop {
            match self.recv()? {
                Some(Frame::Text(t, _)) if self.sockjs && t == "h" => skipped.one()?,
                Some(Frame::Text(t, compressed)) => return Ok((t, compressed)),
                Some(Frame::Ping(_) | Frame::Pong(_)) => skipped.one()?,
                Some(other) => return Err(format!("expected text, got {other:?}")),
                None => return Err("connection closed".into()),
            }
        }
    }
}

/// Heartbeats and control frames passed over while waiting for a frame
/// ([`DeflateWs::skipping`]).
#[derive(Debug)]
pub struct Skipping {
    start: std::time::Instant,
    limit: Duration,
    count: usize,
}

impl Skipping {
    /// Counts one more; an error once they have come alone for longer than the limit.
    pub fn one(&mut self) -> Result<(), String> {
        self.count += 1;
        if self.start.elapsed() > self.limit {
            return Err(format!(
                "only heartbeats, pings or pongs ({}) for {} ms, no other frame",
                self.count,
                self.start.elapsed().as_millis()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_as_a_client_must() {
        let ok = check_answer(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            CHROMIUM_OFFER,
        )
        .unwrap();
        assert!(ok.server_no_context_takeover && ok.client_no_context_takeover);
        for bad in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; foo",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
        ] {
            assert!(check_answer(bad, CHROMIUM_OFFER).is_err(), "{bad}");
        }
        assert!(
            check_answer(
                "permessage-deflate; client_max_window_bits=10",
                "permessage-deflate"
            )
            .is_err()
        );
    }

    /// Raw DEFLATE with a sync flush and a 32 KiB window, the tail cut, as a server sends.
    fn deflated(c: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&TAIL));
        out.truncate(out.len() - TAIL.len());
        out
    }

    #[test]
    fn rfc7692_s7_1_2_1_a_smaller_window_refuses_what_refers_back_past_it() {
        let head: Vec<u8> = (0..100u32).map(|i| b'a' + (i * 7 % 26) as u8).collect();
        let middle: Vec<u8> = (0..1400u32).map(|i| b'A' + (i * 11 % 26) as u8).collect();
        // The end repeats the start, 1500 bytes back.
        let message = [&head[..], &middle[..], &head[..]].concat();
        let payload = deflated(&mut Compress::new(Compression::new(6), false), &message);
        let refused = Window::new(9).inflate(&payload, 1 << 20);
        assert!(refused.is_err(), "{refused:?}");
        assert_eq!(Window::new(11).inflate(&payload, 1 << 20), Ok(message));
        // A message no longer than the window inflates whatever it repeats.
        let short = [&head[..], &head[..], &head[..]].concat();
        let payload = deflated(&mut Compress::new(Compression::new(6), false), &short);
        assert_eq!(Window::new(9).inflate(&payload, 1 << 20), Ok(short.clone()));
        // With the context kept, the next message may refer into the one before, within
        // the window.
        let mut c = Compress::new(Compression::new(6), false);
        let mut window = Window::new(9);
        assert_eq!(
            window.inflate(&deflated(&mut c, &short), 1 << 20),
            Ok(short.clone())
        );
        assert_eq!(
            window.inflate(&deflated(&mut c, &head), 1 << 20),
            Ok(head.clone())
        );
        assert!(Window::new(9).inflate(&payload, 10).is_err(), "the bound");
    }

    #[test]
    fn base64_key() {
        assert_eq!(base64(b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn server_frames_in_pieces() {
        // RFC 7692 §7.2.3.1's "Hello" as a server frame, fed a byte at a time.
        let frame = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut codec = Codec::new(Some(Agreed::default()));
        for b in &frame[..frame.len() - 1] {
            codec.feed(&[*b]);
            assert_eq!(codec.next_frame(), Ok(None));
        }
        codec.feed(&frame[frame.len() - 1..]);
        assert_eq!(
            codec.next_frame(),
            Ok(Some(Frame::Text("Hello".into(), true)))
        );
        let mut plain = Codec::new(None);
        plain.feed(&frame);
        assert!(plain.next_frame().is_err());
    }

    /// The first result [`Codec::next_frame`] gives for `bytes` from the server.
    fn first_frame(bytes: &[u8]) -> Result<Option<Frame>, String> {
        let mut codec = Codec::new(None);
        codec.feed(bytes);
        codec.next_frame()
    }

    #[test]
    fn rfc6455_s5_2_lengths_take_their_shortest_form() {
        let text =
            |len_bytes: &[u8], len: usize| [&[0x81][..], len_bytes, &vec![b'x'; len]].concat();
        let ok = |bytes: Vec<u8>, len: usize| {
            assert_eq!(
                first_frame(&bytes),
                Ok(Some(Frame::Text("x".repeat(len), false))),
                "{len}"
            );
        };
        ok(text(&[125], 125), 125);
        ok(text(&[126, 0, 126], 126), 126);
        ok(text(&[127, 0, 0, 0, 0, 0, 1, 0, 0], 0x10000), 0x10000);
        for (len_bytes, len) in [
            (&[126, 0, 5][..], 5),
            (&[126, 0, 125][..], 125),
            (&[127, 0, 0, 0, 0, 0, 0, 0, 5][..], 5),
            (&[127, 0, 0, 0, 0, 0, 0, 0xff, 0xff][..], 0xFFFF),
        ] {
            let e = first_frame(&text(len_bytes, len)).unwrap_err();
            assert!(e.contains("not the minimal"), "{len_bytes:?}: {e}");
        }
        // The top bit of a 64-bit length, refused from the header (nothing follows).
        let e = first_frame(&[0x81, 127, 0x80, 0, 0, 0, 0, 1, 0, 0]).unwrap_err();
        assert!(e.contains("most significant bit"), "{e}");
    }

    #[test]
    fn rfc6455_s5_5_control_frames_are_short_whole_and_closes_say_utf8() {
        assert_eq!(
            first_frame(&[&[0x89, 125][..], &[b'p'; 125]].concat()),
            Ok(Some(Frame::Ping(vec![b'p'; 125])))
        );
        for first in [0x88, 0x89, 0x8A] {
            let long = [&[first, 126, 0, 126][..], &[0; 126]].concat();
            let e = first_frame(&long).unwrap_err();
            assert!(e.contains("at most 125"), "{first:#x}: {e}");
            // Refused from the header, before the payload it claims comes.
            assert!(first_frame(&long[..4]).is_err(), "{first:#x}");
        }
        let e = first_frame(&[0x09, 1, b'p']).unwrap_err();
        assert!(e.contains("fragmented control frame"), "{e}");
        assert_eq!(
            first_frame(&[0x88, 4, 0x03, 0xe8, b'o', b'k']),
            Ok(Some(Frame::Close(Some((1000, "ok".into())))))
        );
        let e = first_frame(&[0x88, 4, 0x03, 0xe8, 0xff, b'k']).unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn a_server_cannot_make_the_client_buffer_without_bound() {
        // A frame claiming 2^63 bytes, or u64::MAX: refused from its header.
        for len in [1u64 << 63, u64::MAX] {
            let mut codec = Codec::new(None);
            let mut frame = vec![0x81, 127];
            frame.extend_from_slice(&len.to_be_bytes());
            codec.feed(&frame);
            assert!(codec.next_frame().is_err(), "{len}");
        }
        // A fragmented message past the bound: refused at the fragment that crosses it.
        let mut codec = Codec::new(None);
        codec.max_message = 100;
        let mut frames = vec![0x01, 60];
        frames.extend_from_slice(&[b'x'; 60]);
        frames.extend_from_slice(&[0x00, 60]);
        frames.extend_from_slice(&[b'x'; 60]);
        codec.feed(&frames);
        assert!(codec.next_frame().is_err());
    }
}
