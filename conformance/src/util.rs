//! Small helpers: byte escaping for failure messages, diffs, random ids, JSON quoting.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Escapes bytes for display: printable ASCII as is, `\n \r \t \" \\` escaped, other valid
/// UTF-8 characters as `\u{XXXX}`, invalid bytes as `\xNN`.
pub fn esc(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                ' '..='~' => out.push(c),
                _ => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Escapes and shortens long byte strings (keeps the start and the end).
pub fn esc_short(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return esc(bytes);
    }
    let half = max / 2;
    format!(
        "{}…[{} bytes]…{}",
        esc(&bytes[..half]),
        bytes.len() - 2 * half,
        esc(&bytes[bytes.len() - half..])
    )
}

/// Describes how `got` differs from `expected`: both in full when short, otherwise the first
/// differing position with some context.
pub fn diff(expected: &[u8], got: &[u8]) -> String {
    if expected.len() <= 160 && got.len() <= 160 {
        return format!("expected \"{}\", got \"{}\"", esc(expected), esc(got));
    }
    let pos = expected
        .iter()
        .zip(got.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let start = pos.saturating_sub(24);
    let end_e = (pos + 40).min(expected.len());
    let end_g = (pos + 40).min(got.len());
    format!(
        "{} bytes expected, {} got; first difference at byte {pos}: expected \"…{}…\", got \"…{}…\"",
        expected.len(),
        got.len(),
        esc(&expected[start.min(expected.len())..end_e]),
        esc(&got[start.min(got.len())..end_g])
    )
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Seconds since the Unix epoch of an RFC 9110 §5.6.7 IMF-fixdate, exactly as written:
/// `Sun, 06 Nov 1994 08:49:37 GMT` (29 bytes, the weekday matching the date). `None` for
/// anything else (the obsolete RFC 850 and asctime forms included).
pub fn parse_imf_fixdate(s: &str) -> Option<u64> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = s.as_bytes();
    if b.len() != 29
        || &b[3..5] != b", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
        || &b[25..] != b" GMT"
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let t = s.get(range)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| s.get(8..11) == Some(*m))? as u64 + 1;
    let year = num(12..16)?;
    let (hour, min, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1970
        || day == 0
        || day > month_days[month as usize - 1]
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    if s.get(0..3) != Some(DAYS[(days % 7) as usize]) {
        return None;
    }
    Some(days * 86_400 + hour * 3_600 + min * 60 + sec)
}

/// §8's pct(F) for eventsource: `%` → `%25`, CR → `%0D`, LF → `%0A`, NUL → `%00`.
pub fn pct_frame(f: &str) -> String {
    f.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
        .replace('\0', "%00")
}

/// A random 64-bit number (std's randomly keyed hasher, a counter and the clock).
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

/// A fresh random uuid4-style session id.
pub fn random_session_id() -> String {
    let a = random_u64();
    let b = random_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Standard JSON string literal (as `JSON.stringify`): `"` and `\` escaped, the short
/// escapes `\b \t \n \f \r`, other C0 controls as lowercase `\u00xx`, everything else raw.
pub fn json_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    // The runs between escapes are copied whole: the load generator quotes every message
    // it sends, and a character at a time this was a fifth of its CPU time at 1 KB. Every
    // escaped character is ASCII, so each escape sits on a character boundary.
    let bytes = s.as_bytes();
    let mut run = 0;
    loop {
        let i = run + json_plain_len(&bytes[run..]);
        if i == bytes.len() {
            break;
        }
        out.push_str(&s[run..i]);
        match bytes[i] {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
    out
}

/// How many bytes from the start of `bytes` a JSON string holds as they are: up to the
/// first `"`, `\\` or control character. Sixteen bytes at a time where none is there (a
/// check without an early exit, which the compiler turns into vector compares), then
/// byte by byte.
pub fn json_plain_len(bytes: &[u8]) -> usize {
    let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut blocks = bytes.chunks_exact(16);
    let mut at = 0;
    for block in blocks.by_ref() {
        if block.iter().fold(false, |any, &b| any | special(b)) {
            break;
        }
        at += 16;
    }
    at + bytes[at..]
        .iter()
        .position(|&b| special(b))
        .unwrap_or(bytes.len() - at)
}

/// Whether the server must `\u`-escape this code point in outgoing JSON (§5.1), beyond
/// standard JSON.
pub fn server_must_escape(c: char) -> bool {
    matches!(c as u32, 0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff)
}

/// JSON string literal with the SockJS §5.1 extra escapes (lowercase hex).
pub fn sockjs_quote(s: &str) -> String {
    let mut out = String::new();
    for c in json_quote(s).chars() {
        if server_must_escape(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Percent-encodes every byte outside `[A-Za-z0-9_.~-]` (for form bodies and queries).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.~-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(esc(b"o\n"), "o\\n");
        assert_eq!(esc(b"a\"b\\\r\t"), "a\\\"b\\\\\\r\\t");
        assert_eq!(esc("\u{ffff}é".as_bytes()), "\\u{ffff}\\u{00e9}");
        assert_eq!(esc(b"\xff\x00"), "\\xff\\u{0000}");
    }

    #[test]
    fn diffs() {
        assert_eq!(diff(b"o\n", b"h\n"), "expected \"o\\n\", got \"h\\n\"");
        let a = vec![b'x'; 300];
        let mut b = a.clone();
        b[200] = b'y';
        let d = diff(&a, &b);
        assert!(d.contains("first difference at byte 200"), "{d}");
        let short = esc_short(&a, 20);
        assert!(short.contains("[280 bytes]"), "{short}");
    }

    #[test]
    fn session_ids_differ_and_are_path_safe() {
        let a = random_session_id();
        let b = random_session_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    }

    /// The character-at-a-time quoting the run-copying one replaced.
    fn json_quote_by_char(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{8}' => out.push_str("\\b"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\u{c}' => out.push_str("\\f"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn quoting_agrees_with_quoting_by_character_and_with_serde_json() {
        let specials: Vec<char> = (0u32..0x80)
            .filter_map(char::from_u32)
            .chain(['é', '\u{2028}', '\u{ffff}', '😀'])
            .collect();
        let mut cases = vec![String::new()];
        for &a in &specials {
            cases.push(a.to_string());
            for &b in ['a', '"', '\u{1}', 'é', '\\'].iter() {
                cases.push(format!("{a}{b}"));
                cases.push(format!("{b}{a}x{a}"));
                cases.push(format!("run of plain text {a}{b} and more {b}"));
            }
        }
        for case in &cases {
            assert_eq!(json_quote(case), json_quote_by_char(case), "{case:?}");
            assert_eq!(
                json_quote(case),
                serde_json::to_string(case).unwrap(),
                "{case:?}"
            );
        }
    }

    #[test]
    fn plain_lengths_from_every_place_of_a_special_byte() {
        for len in 0..40 {
            for special in [b'"', b'\\', 0, 0x1f] {
                for at in 0..=len {
                    let mut bytes = vec![b'a'; len];
                    if at < len {
                        bytes[at] = special;
                    }
                    assert_eq!(json_plain_len(&bytes), at, "len {len}, {special} at {at}");
                }
            }
            // Bytes just beside the special ones are plain.
            let beside = [0x20, b'!', b'#', b'[', b']', 0x7f, 0x80, 0xff];
            let bytes: Vec<u8> = beside.iter().copied().cycle().take(len).collect();
            assert_eq!(json_plain_len(&bytes), len);
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(
            json_quote("a\"\\\u{8}\u{c}\n\r\t\u{1}\u{1f}/"),
            r#""a\"\\\b\f\n\r\t\u0001\u001f/""#
        );
        assert_eq!(
            sockjs_quote("\u{200c}\u{2028}x\u{ffff}\u{fffe}"),
            r#""\u200c\u2028x\uffff\ufffe""#
        );
        assert_eq!(sockjs_quote("\u{7f}\u{ad}"), "\"\u{7f}\u{ad}\"");
        assert_eq!(percent_encode("[\"x\"]"), "%5B%22x%22%5D");
    }

    #[test]
    fn imf_fixdate() {
        use super::parse_imf_fixdate;
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_imf_fixdate("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
        // Wrong weekday, obsolete forms, other zones, bad fields.
        assert_eq!(parse_imf_fixdate("Mon, 06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate("Sun Nov  6 08:49:37 1994"), None);
        assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_imf_fixdate("Sun, 6 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate("Thu, 29 Feb 2023 12:00:00 GMT"), None);
        assert_eq!(parse_imf_fixdate("Sun, 06 Nov 1994 24:49:37 GMT"), None);
    }
}
