//! WebSocket handshake arithmetic (PROTOCOL.md §9.1): the RFC 6455 accept key and the
//! hixie-76 key challenge.

use md5::{Digest as _, Md5};
use sha1::Sha1;

const RFC6455_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key ‖ GUID)).
///
/// ```
/// assert_eq!(
///     sockjs_core::handshake::accept_key(b"x3JJHMbDL1EzLkh9GBhXDw=="),
///     "HSmrc0sMlYUkAGmm5OPpG2HaGWk="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(RFC6455_GUID);
    base64(&sha.finalize())
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The number a hixie-76 `Sec-WebSocket-Key1`/`Key2` stands for: its digits read as one
/// number, divided by its count of spaces. `None` when there are no spaces, the division is
/// not exact, or the number does not fit in 32 bits.
///
/// ```
/// use sockjs_core::handshake::hixie76_key_number;
/// assert_eq!(hixie76_key_number("4 @1  46546xW%0l 1 5"), Some(829309203));
/// assert_eq!(hixie76_key_number("12998 5 Y3 1  .P00"), Some(259970620));
/// assert_eq!(hixie76_key_number("123"), None);
/// ```
pub fn hixie76_key_number(key: &str) -> Option<u32> {
    let mut number: u64 = 0;
    let mut spaces: u64 = 0;
    for b in key.bytes() {
        match b {
            b'0'..=b'9' => {
                number = number.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                if number > u64::from(u32::MAX) * 1024 {
                    return None;
                }
            }
            b' ' => spaces += 1,
            _ => {}
        }
    }
    if spaces == 0 || number % spaces != 0 {
        return None;
    }
    u32::try_from(number / spaces).ok()
}

/// The 16-byte hixie-76 answer: MD5(n1 ‖ n2 ‖ key3), each number big-endian.
///
/// ```
/// let answer = sockjs_core::handshake::hixie76_answer(829309203, 259970620, *b"aaaaaaaa");
/// assert_eq!(answer, [0xca, 0x34, 0x00, 0xd8, 0xa5, 0x08, 0x47, 0x97,
///                     0x2c, 0xd5, 0x71, 0x5a, 0xba, 0xbf, 0x43, 0x7b]);
/// ```
pub fn hixie76_answer(n1: u32, n2: u32, key3: [u8; 8]) -> [u8; 16] {
    let mut md5 = Md5::new();
    md5.update(n1.to_be_bytes());
    md5.update(n2.to_be_bytes());
    md5.update(key3);
    md5.finalize().into()
}

/// A hex MD5 digest, for the iframe page's ETag.
pub(crate) fn md5_hex(data: &[u8]) -> String {
    let digest = Md5::digest(data);
    let mut out = String::with_capacity(32);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Whether a `Sec-WebSocket-Key` is what RFC 6455 §4.1 requires: the base64 of 16 bytes,
/// that is 22 base64 characters and `==`.
///
/// ```
/// use sockjs_core::handshake::is_valid_key;
/// assert!(is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
/// assert!(!is_valid_key(b"dGhlIHNhbXBsZSBub25jZQ")); // unpadded
/// assert!(!is_valid_key(b"not a key"));
/// ```
pub fn is_valid_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn s9_1_rfc6455_vector() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn s9_1_hixie76_rejects_bad_keys() {
        assert_eq!(hixie76_key_number("1 2"), Some(12));
        assert_eq!(hixie76_key_number("13 "), Some(13));
        assert_eq!(hixie76_key_number("13  "), None);
        assert_eq!(hixie76_key_number(" 99999999999999999999999"), None);
        assert_eq!(hixie76_key_number(""), None);
    }
}
