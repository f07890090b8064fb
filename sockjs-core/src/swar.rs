//! Byte scans eight at a time in a `u64` ("SIMD within a register"), for the JSON string
//! scanners on the hot paths. Each mask has the high bit set in every byte that matches;
//! bytes above the first match may be flagged falsely (a borrow carries upwards), so only
//! the lowest flagged byte is exact, which is the one the scanners use.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The eight bytes at `at`, the first in the lowest byte; `None` when fewer are left.
#[inline]
pub(crate) fn load(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// Flags the bytes of `word` below `n` (`n` at most 0x80).
#[inline]
pub(crate) fn below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH
}

/// Flags the bytes of `word` equal to `b`.
#[inline]
pub(crate) fn equal(word: u64, b: u8) -> u64 {
    below(word ^ (ONES * u64::from(b)), 1)
}

/// Flags the bytes of `word` at or above 0x80 (not ASCII).
#[inline]
pub(crate) fn non_ascii(word: u64) -> u64 {
    word & HIGH
}

/// The index of the lowest flagged byte of a non-zero mask.
#[inline]
pub(crate) fn first(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    type Matches = fn(u8) -> bool;

    /// Every mask against a byte-by-byte check, for every byte value at every position,
    /// with every other byte a neighbour that could disturb the borrow.
    #[test]
    fn masks_find_the_first_match_exactly() {
        for filler in [0x00u8, 0x1f, 0x20, 0x21, 0x5c, 0x7f, 0x80, 0xff] {
            for value in 0..=255u8 {
                for pos in 0..8 {
                    let mut bytes = [filler; 8];
                    bytes[pos] = value;
                    let word = load(&bytes, 0).expect("eight bytes");
                    let cases: [(u64, Matches); 4] = [
                        (below(word, 0x20), |b| b < 0x20),
                        (equal(word, b'"'), |b| b == b'"'),
                        (equal(word, b'\\'), |b| b == b'\\'),
                        (non_ascii(word), |b| b >= 0x80),
                    ];
                    for (mask, test) in cases {
                        let expected = bytes.iter().position(|&b| test(b));
                        let found = (mask != 0).then(|| first(mask));
                        assert_eq!(found, expected, "{bytes:02x?}");
                    }
                }
            }
        }
    }

    #[test]
    fn load_needs_eight_bytes() {
        assert_eq!(load(b"1234567", 0), None);
        assert_eq!(load(b"12345678", 1), None);
        assert_eq!(load(b"\x01\0\0\0\0\0\0\0", 0), Some(1));
        assert_eq!(load(b"", usize::MAX), None);
    }
}
