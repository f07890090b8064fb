//! permessage-deflate's compression (RFC 7692 §7.2): raw DEFLATE with a sync flush, the
//! trailing `00 00 ff ff` removed on the way out and put back on the way in.
//!
//! Without context takeover the compressors and decompressors are the thread's (reset for
//! each message), so a connection holds none; with it, the connection owns its own, made
//! at its first compressed message.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::Error;

/// What a sync flush ends with, and what the receiver appends (RFC 7692 §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// A thread buffer that grew past this is given back after use.
const KEEP: usize = 256 * 1024;

thread_local! {
    static INFLATER: RefCell<Option<Box<Decompress>>> = const { RefCell::new(None) };
    /// One compressor per level in use on the thread.
    static DEFLATERS: RefCell<Vec<(u8, Box<Compress>)>> = const { RefCell::new(Vec::new()) };
    /// Inflated messages, and compressed ones on their way into a frame.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn new_inflater() -> Box<Decompress> {
    Box::new(Decompress::new(false))
}

fn new_deflater(level: u8) -> Box<Compress> {
    Box::new(Compress::new(Compression::new(u32::from(level)), false))
}

/// Runs `f` with a thread scratch buffer (or a fresh one, if the thread's is in use),
/// giving back a buffer that grew large.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let result = f(&mut buf);
            if buf.capacity() > KEEP {
                *buf = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// The receiving side of one connection.
#[derive(Debug)]
pub(super) struct Inflate {
    /// The client keeps its window between messages: so must we, in our own decompressor.
    takeover: bool,
    own: Option<Box<Decompress>>,
}

impl Inflate {
    pub(super) fn new(client_no_context_takeover: bool) -> Inflate {
        Inflate {
            takeover: !client_no_context_takeover,
            own: None,
        }
    }

    /// Inflates one message's payload (bounded by `max` inflated bytes) and hands the
    /// result to `f`.
    pub(super) fn message<R>(
        &mut self,
        payload: &[u8],
        max: usize,
        f: impl FnOnce(&[u8]) -> Result<R, Error>,
    ) -> Result<R, Error> {
        with_scratch(|out| {
            if self.takeover {
                let d = self.own.get_or_insert_with(new_inflater);
                inflate(d, payload, out, max)?;
            } else {
                INFLATER.with(|cell| match cell.try_borrow_mut() {
                    Ok(mut shared) => {
                        let d = shared.get_or_insert_with(new_inflater);
                        // Reset before, not after: an error may have left it mid-stream.
                        d.reset(false);
                        inflate(d, payload, out, max)
                    }
                    Err(_) => inflate(&mut new_inflater(), payload, out, max),
                })?;
            }
            f(out)
        })
    }
}

/// Inflates `payload` followed by [`TAIL`] into `out`, failing as soon as `out` would
/// exceed `max` bytes (so a decompression bomb costs at most `max` bytes of memory).
fn inflate(d: &mut Decompress, payload: &[u8], out: &mut Vec<u8>, max: usize) -> Result<(), Error> {
    for mut input in [payload, &TAIL[..]] {
        loop {
            if out.len() == out.capacity() {
                if out.len() > max {
                    return Err(Error::TooBig);
                }
                // Doubling, capped one byte past the bound (that byte says "too big").
                let more = out.len().max(4096).min(max.saturating_add(1) - out.len());
                out.reserve_exact(more);
            }
            let (in_before, out_before) = (d.total_in(), out.len());
            let status = d
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| Error::InvalidDeflate)?;
            let used = usize::try_from(d.total_in() - in_before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            if out.len() > max {
                return Err(Error::TooBig);
            }
            match status {
                // A final block (RFC 7692 §7.2.3.4): the message is complete.
                Status::StreamEnd => {
                    d.reset(false);
                    return Ok(());
                }
                Status::Ok | Status::BufError => {
                    let room = out.len() < out.capacity();
                    if input.is_empty() && room {
                        break;
                    }
                    if used == 0 && out.len() == out_before && room {
                        // Neither input taken nor output made, with room for it.
                        return Err(Error::InvalidDeflate);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Compresses `input` with a sync flush into `out` (cleared first), without the trailing
/// `00 00 ff ff` (RFC 7692 §7.2.1).
fn deflate(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(input.len() / 2 + 64);
    let mut input = input;
    loop {
        let before = c.total_in();
        if c.compress_vec(input, out, FlushCompress::Sync).is_err() {
            break;
        }
        let used = usize::try_from(c.total_in() - before).unwrap_or(input.len());
        input = &input[used.min(input.len())..];
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
}

/// The sending side of one connection: compresses text messages of at least `min_size`
/// bytes and at most
/// [`DeflateParams::largest_compressed`](crate::DeflateParams::largest_compressed).
#[derive(Debug)]
pub struct Deflater {
    min_size: usize,
    /// Longer messages go uncompressed: the client's window is smaller than 32 KiB.
    max_size: usize,
    level: u8,
    /// Keep the window between messages, in our own compressor.
    takeover: bool,
    own: Option<Box<Compress>>,
}

impl Deflater {
    /// A compressor for the negotiated `params`, with the server's `options` (level, the
    /// size below which messages go uncompressed).
    pub fn new(params: &crate::DeflateParams, options: &crate::DeflateOptions) -> Deflater {
        Deflater {
            min_size: options.min_size.max(1),
            max_size: params.largest_compressed(),
            level: options.level.min(9),
            takeover: !params.server_no_context_takeover && params.server_max_window_bits >= 15,
            own: None,
        }
    }

    /// Whether the connection holds a compressor of its own (context takeover, after its
    /// first compressed message).
    pub fn holds_state(&self) -> bool {
        self.own.is_some()
    }

    /// Appends a text message: compressed (RSV1 set) when it is at least `min_size` bytes
    /// and fits the client's window
    /// ([`DeflateParams::largest_compressed`](crate::DeflateParams::largest_compressed)),
    /// else as [`encode_text`](super::encode_text) does.
    pub fn encode_text(&mut self, text: &str, out: &mut Vec<u8>) {
        let input = text.as_bytes();
        if input.len() < self.min_size || input.len() > self.max_size {
            return super::encode_text(text, out);
        }
        with_scratch(|compressed| {
            if self.takeover {
                let level = self.level;
                let c = self.own.get_or_insert_with(|| new_deflater(level));
                deflate(c, input, compressed);
                // The client's window holds this message now: it must go compressed.
                return super::encode_first(0xC0 | super::TEXT, compressed, out);
            }
            DEFLATERS.with(|cell| match cell.try_borrow_mut() {
                Ok(mut shared) => {
                    let at = match shared.iter().position(|(l, _)| *l == self.level) {
                        Some(at) => at,
                        None => {
                            shared.push((self.level, new_deflater(self.level)));
                            shared.len() - 1
                        }
                    };
                    let c = &mut shared[at].1;
                    c.reset();
                    deflate(c, input, compressed);
                }
                Err(_) => deflate(&mut new_deflater(self.level), input, compressed),
            });
            if compressed.len() < input.len() {
                super::encode_first(0xC0 | super::TEXT, compressed, out);
            } else {
                // Incompressible: each message stands alone, so it may go as it is.
                super::encode_text(text, out);
            }
        });
    }
}

/// Compresses `input` as one message on a fresh compressor (no context takeover), without
/// the tail: what a peer puts in a compressed frame. For tests and clients.
pub fn compress_message(input: &[u8], level: u8) -> Vec<u8> {
    let mut out = Vec::new();
    deflate(&mut new_deflater(level.min(9)), input, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(payload: &[u8], max: usize) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        inflate(&mut new_inflater(), payload, &mut out, max)?;
        Ok(out)
    }

    #[test]
    fn rfc7692_examples() {
        // RFC 7692 §7.2.3.1: "Hello" compressed.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_all(&hello, 64).as_deref(), Ok(&b"Hello"[..]));
        // RFC 7692 §7.2.3.3: no compression (a stored block).
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, b'H', b'e', b'l', b'l', b'o', 0x00,
        ];
        assert_eq!(inflate_all(&stored, 64).as_deref(), Ok(&b"Hello"[..]));
        // RFC 7692 §7.2.3.4: a block with BFINAL set.
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_all(&last, 64).as_deref(), Ok(&b"Hello"[..]));
        // RFC 7692 §7.2.3.2: the second "Hello" with the first one's window.
        let mut d = new_inflater();
        let mut out = Vec::new();
        inflate(&mut d, &hello, &mut out, 64).expect("first");
        out.clear();
        inflate(&mut d, &[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 64).expect("second");
        assert_eq!(out, b"Hello");
        // RFC 7692 §7.2.3.6 (an empty message) and our own compressor on "Hello".
        assert_eq!(inflate_all(&[0x00], 64).as_deref(), Ok(&b""[..]));
        assert_eq!(compress_message(b"Hello", 1), hello);
    }

    #[test]
    fn bombs_stop_at_the_bound() {
        let zeros = compress_message(&vec![0u8; 1 << 20], 9);
        assert!(zeros.len() < 2048, "{}", zeros.len());
        assert_eq!(inflate_all(&zeros, 1 << 20).map(|o| o.len()), Ok(1 << 20));
        let mut out = Vec::new();
        let result = inflate(&mut new_inflater(), &zeros, &mut out, 4096);
        assert_eq!(result, Err(Error::TooBig));
        assert!(out.capacity() <= 8192, "{}", out.capacity());
        assert_eq!(
            inflate_all(&[0xff, 0xff, 0xff], 64),
            Err(Error::InvalidDeflate)
        );
    }
}
