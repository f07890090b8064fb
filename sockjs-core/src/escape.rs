//! JSON string escaping for outgoing frames (PROTOCOL.md §5.1 and §8).
//!
//! Writes straight into the caller's buffer: the hot path (a message queued for a session)
//! copies each byte once and allocates nothing beyond growing that buffer.

use crate::swar;

/// What to write for an ASCII byte: 0 = itself, `u` = `\u00XX`, else `\` + that byte.
const ASCII_ESCAPES: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Where escaped text goes: bytes for HTTP bodies, a `String` for WebSocket text frames
/// (which then need no UTF-8 check of their own).
trait Sink {
    fn reserve(&mut self, additional: usize);
    /// Appends ASCII bytes (quotes and escape sequences).
    fn push_ascii(&mut self, ascii: &[u8]);
    /// Appends `s[range]`; `range` lies on character boundaries.
    fn push_run(&mut self, s: &str, range: std::ops::Range<usize>);
}

impl Sink for Vec<u8> {
    #[inline]
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }

    #[inline]
    fn push_ascii(&mut self, ascii: &[u8]) {
        self.extend_from_slice(ascii);
    }

    #[inline]
    fn push_run(&mut self, s: &str, range: std::ops::Range<usize>) {
        if let Some(run) = s.as_bytes().get(range) {
            self.extend_from_slice(run);
        }
    }
}

impl Sink for String {
    #[inline]
    fn reserve(&mut self, additional: usize) {
        String::reserve(self, additional);
    }

    #[inline]
    fn push_ascii(&mut self, ascii: &[u8]) {
        self.extend(ascii.iter().map(|&b| char::from(b)));
    }

    #[inline]
    fn push_run(&mut self, s: &str, range: std::ops::Range<usize>) {
        if let Some(run) = s.get(range) {
            self.push_str(run);
        }
    }
}

fn push_u_escape(out: &mut impl Sink, code: u32) {
    out.push_ascii(&[
        b'\\',
        b'u',
        HEX[(code >> 12 & 0xf) as usize],
        HEX[(code >> 8 & 0xf) as usize],
        HEX[(code >> 4 & 0xf) as usize],
        HEX[(code & 0xf) as usize],
    ]);
}

/// Returns the code point of a 3-byte UTF-8 sequence at `bytes[i..i + 3]` if it is one of
/// the code points SockJS requires escaped beyond plain JSON: U+200C–U+200F,
/// U+2028–U+202F, U+2060–U+206F and U+FFF0–U+FFFF.
fn sockjs_extra_escape(bytes: &[u8], i: usize) -> Option<u32> {
    let (b0, b1, b2) = (bytes[i], *bytes.get(i + 1)?, *bytes.get(i + 2)?);
    let escaped = match (b0, b1) {
        // U+2000..U+203F: E2 80 80..BF
        (0xE2, 0x80) => matches!(b2, 0x8C..=0x8F | 0xA8..=0xAF),
        // U+2040..U+207F: E2 81 80..BF
        (0xE2, 0x81) => matches!(b2, 0xA0..=0xAF),
        // U+FFC0..U+FFFF: EF BF 80..BF
        (0xEF, 0xBF) => b2 >= 0xB0,
        _ => false,
    };
    escaped.then_some(((b0 as u32 & 0x0f) << 12) | ((b1 as u32 & 0x3f) << 6) | (b2 as u32 & 0x3f))
}

/// Whether any of the 8 bytes in `word` may need attention: a control character, `"`, `\`
/// or a non-ASCII byte (which may start one of the extra escaped code points).
#[inline]
fn word_needs_care(word: u64) -> bool {
    (swar::below(word, 0x20)
        | swar::equal(word, b'"')
        | swar::equal(word, b'\\')
        | swar::non_ascii(word))
        != 0
}

/// Appends `s` as a quoted JSON string, escaped as SockJS requires (§5.1): JSON's own
/// escapes for `"`, `\` and C0 controls, plus `\uXXXX` (lowercase hex) for U+200C–U+200F,
/// U+2028–U+202F, U+2060–U+206F and U+FFF0–U+FFFF. Everything else is raw UTF-8.
///
/// ```
/// let mut out = Vec::new();
/// sockjs_core::escape::quote_message(&mut out, "a\"\n\u{2028}é");
/// assert_eq!(out, b"\"a\\\"\\n\\u2028\xc3\xa9\"");
/// ```
pub fn quote_message(out: &mut Vec<u8>, s: &str) {
    quote_into(out, s);
}

/// [`quote_message`] into a `String`.
pub(crate) fn quote_message_str(out: &mut String, s: &str) {
    quote_into(out, s);
}

#[inline]
fn quote_into(out: &mut impl Sink, s: &str) {
    out.reserve(s.len() + 2);
    out.push_ascii(b"\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Plain ASCII runs are skipped a block, then eight bytes, at a time.
        i = swar::skip_clean_blocks(bytes, i, |b| {
            b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80
        });
        if let Some(word) = swar::load(bytes, i) {
            if !word_needs_care(word) {
                i += 8;
                continue;
            }
        }
        // Otherwise look at these eight bytes one by one.
        let stop = (i + 8).min(bytes.len());
        while i < stop {
            let b = bytes[i];
            if b < 0x80 {
                let esc = ASCII_ESCAPES[b as usize];
                if esc != 0 {
                    out.push_run(s, start..i);
                    if esc == b'u' {
                        push_u_escape(out, b as u32);
                    } else {
                        out.push_ascii(&[b'\\', esc]);
                    }
                    start = i + 1;
                }
                i += 1;
            } else if b == 0xE2 || b == 0xEF {
                if let Some(code) = sockjs_extra_escape(bytes, i) {
                    out.push_run(s, start..i);
                    push_u_escape(out, code);
                    start = i + 3;
                }
                i += 3;
            } else {
                i += 1;
            }
        }
    }
    // Every run starts after an escaped character and ends before one (or at the end):
    // on character boundaries.
    out.push_run(s, start..bytes.len());
    out.push_ascii(b"\"");
}

/// Appends `frame` as a JavaScript string literal, as `JSON.stringify` would write it; used
/// for the second encoding of frames inside jsonp and htmlfile responses (§8).
///
/// With `escape_lt`, `<` also becomes `\u003c`, so a message containing `</script>` cannot
/// end the htmlfile's script element early.
///
/// ```
/// let mut out = Vec::new();
/// sockjs_core::escape::quote_js(&mut out, br#"a["</script>"]"#, true);
/// assert_eq!(out, br#""a[\"\u003c/script>\"]""#);
/// ```
pub fn quote_js(out: &mut Vec<u8>, frame: &[u8], escape_lt: bool) {
    out.reserve(frame.len() + 8);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in frame.iter().enumerate() {
        if b >= 0x80 {
            continue;
        }
        let esc = ASCII_ESCAPES[b as usize];
        if esc == 0 && !(escape_lt && b == b'<') {
            continue;
        }
        out.extend_from_slice(&frame[start..i]);
        if esc == b'u' || b == b'<' {
            push_u_escape(out, b as u32);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&frame[start..]);
    out.push(b'"');
}

/// Appends `frame` percent-encoded for an EventSource `data:` line (§8): `%`, CR, LF and NUL
/// become `%25`, `%0D`, `%0A` and `%00`, because the client runs `decodeURI` on each line.
///
/// ```
/// let mut out = Vec::new();
/// sockjs_core::escape::percent_event_data(&mut out, b"a[\"100%\"]");
/// assert_eq!(out, b"a[\"100%25\"]");
/// ```
pub fn percent_event_data(out: &mut Vec<u8>, frame: &[u8]) {
    let mut start = 0;
    for (i, &b) in frame.iter().enumerate() {
        let code: &[u8] = match b {
            b'%' => b"%25",
            b'\r' => b"%0D",
            b'\n' => b"%0A",
            0 => b"%00",
            _ => continue,
        };
        out.extend_from_slice(&frame[start..i]);
        out.extend_from_slice(code);
        start = i + 1;
    }
    out.extend_from_slice(&frame[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(s: &str) -> String {
        let mut out = Vec::new();
        quote_message(&mut out, s);
        String::from_utf8(out).expect("escaper emits UTF-8")
    }

    #[test]
    fn s5_1_json_escapes_lowercase() {
        assert_eq!(quoted("\"\\\u{8}\t\n\u{c}\r"), r#""\"\\\b\t\n\f\r""#);
        assert_eq!(quoted("\u{0}\u{1}\u{1f}"), r#""\u0000\u0001\u001f""#);
    }

    #[test]
    fn s5_1_extra_ranges_escaped_lowercase_hex() {
        let ranges = [
            0x200c..=0x200f,
            0x2028..=0x202f,
            0x2060..=0x206f,
            0xfff0..=0xffff,
        ];
        for range in ranges {
            for code in range {
                let c = char::from_u32(code).expect("BMP non-surrogate");
                assert_eq!(quoted(&c.to_string()), format!("\"\\u{code:04x}\""));
            }
        }
    }

    #[test]
    fn s5_1_neighbours_stay_raw() {
        for code in [
            0x7f, 0xad, 0x2000, 0x200b, 0x2010, 0x2027, 0x2030, 0x205f, 0x2070, 0xffef, 0x1f600,
        ] {
            let c = char::from_u32(code).expect("valid char");
            assert_eq!(quoted(&c.to_string()), format!("\"{c}\""), "U+{code:04X}");
        }
        assert_eq!(quoted("/<>&"), "\"/<>&\"");
    }

    #[test]
    fn s5_1_matches_serde_json_where_serde_is_right() {
        let s = "plain \u{7} \u{1b} text é 😀";
        let mut out = Vec::new();
        quote_message(&mut out, s);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            serde_json::to_string(s).expect("json")
        );
    }

    #[test]
    fn s5_1_every_position_of_every_special_byte() {
        // The block and eight-byte fast paths must not skip a byte that needs escaping,
        // wherever it is: in the first block, past it, in the short tail.
        for special in ["\"", "\\", "\n", "\u{1}", "\u{2028}", "\u{ffff}", "é"] {
            for pos in 0..150 {
                let text = format!("{}{special}{}", "a".repeat(pos), "b".repeat(150 - pos));
                assert_eq!(quoted(&text), serde_reference(&text), "{text:?}");
            }
        }
    }

    /// Text dense in what must be escaped, at random places: `any::<String>()` draws no
    /// control characters and no unassigned or format code points, which are exactly what
    /// the fast paths must not skip.
    fn tricky_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let special = proptest::sample::select(vec![
            '"',
            '\\',
            '\n',
            '\r',
            '\t',
            '\u{0}',
            '\u{8}',
            '\u{1f}',
            '\u{7f}',
            '<',
            '%',
            '\u{80}',
            '\u{9f}',
            '\u{ad}',
            'é',
            '\u{200b}',
            '\u{200c}',
            '\u{200f}',
            '\u{2010}',
            '\u{2027}',
            '\u{2028}',
            '\u{202f}',
            '\u{2030}',
            '\u{205f}',
            '\u{2060}',
            '\u{206f}',
            '\u{2070}',
            '\u{ffef}',
            '\u{fff0}',
            '\u{fffd}',
            '\u{ffff}',
            '\u{10000}',
            '\u{1f600}',
        ]);
        let one = prop_oneof![4 => Just('a'), 2 => special, 1 => any::<char>()];
        proptest::collection::vec(one, 0..300).prop_map(|chars| chars.into_iter().collect())
    }

    /// `%XX` back to its byte, as the client's `decodeURI` does for what
    /// [`percent_event_data`] writes.
    fn percent_decoded(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        out
    }

    proptest::proptest! {
        /// Exactly the reference's bytes, however the specials fall against the blocks.
        #[test]
        fn s5_1_tricky_text_is_escaped_exactly(text in tricky_text()) {
            proptest::prop_assert_eq!(quoted(&text), serde_reference(&text));
            let mut as_text = String::new();
            quote_message_str(&mut as_text, &text);
            proptest::prop_assert_eq!(as_text, serde_reference(&text));
        }

        /// §8: the second encoding reads back as the frame, and with `escape_lt` holds no
        /// `<` (no `</script>` can end the htmlfile's script early).
        #[test]
        fn s8_quote_js_reads_back_as_the_frame(text in tricky_text(), lt in proptest::prelude::any::<bool>()) {
            let mut out = Vec::new();
            quote_js(&mut out, text.as_bytes(), lt);
            let back: String = serde_json::from_slice(&out).expect("a JSON string");
            proptest::prop_assert_eq!(&back, &text);
            if lt {
                proptest::prop_assert!(!out.contains(&b'<'));
            }
        }

        /// §8: an EventSource `data:` line holds no CR, LF or NUL, and decodes back to the
        /// frame.
        #[test]
        fn s8_eventsource_data_decodes_back_as_the_frame(text in tricky_text()) {
            let mut out = Vec::new();
            percent_event_data(&mut out, text.as_bytes());
            proptest::prop_assert!(!out.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
            proptest::prop_assert_eq!(percent_decoded(&out), text.as_bytes());
        }

        #[test]
        fn s5_1_any_text_reads_back_as_itself(text in proptest::prelude::any::<String>()) {
            let back: String = serde_json::from_str(&quoted(&text)).expect("a JSON string");
            proptest::prop_assert_eq!(back, text);
        }

        /// WebSocket frames are escaped into a `String`, HTTP bodies into bytes: the same
        /// text either way.
        #[test]
        fn s5_1_text_and_byte_escaping_agree(text in proptest::prelude::any::<String>()) {
            let mut as_text = String::new();
            quote_message_str(&mut as_text, &text);
            proptest::prop_assert_eq!(as_text, quoted(&text));
        }
    }

    #[test]
    fn s5_1_text_escaping_at_every_position_of_every_special_byte() {
        for special in [
            "\"",
            "\\",
            "\n",
            "\u{1}",
            "\u{2028}",
            "\u{ffff}",
            "é",
            "\u{1f600}",
        ] {
            for pos in 0..150 {
                let text = format!("{}{special}{}", "a".repeat(pos), "b".repeat(150 - pos));
                let mut as_text = String::new();
                quote_message_str(&mut as_text, &text);
                assert_eq!(as_text, serde_reference(&text), "{text:?}");
            }
        }
    }

    /// serde_json's encoding plus the SockJS extras, as an independent reference.
    fn serde_reference(s: &str) -> String {
        let json = serde_json::to_string(s).expect("json");
        json.chars()
            .map(|c| match c as u32 {
                0x200c..=0x200f | 0x2028..=0x202f | 0x2060..=0x206f | 0xfff0..=0xffff => {
                    format!("\\u{:04x}", c as u32)
                }
                _ => c.to_string(),
            })
            .collect()
    }

    #[test]
    fn s8_quote_js_is_json_stringify() {
        let mut out = Vec::new();
        quote_js(&mut out, br#"a["x\n"]"#, false);
        assert_eq!(out, br#""a[\"x\\n\"]""#);
    }

    #[test]
    fn s8_eventsource_percent_encoding() {
        let mut out = Vec::new();
        percent_event_data(&mut out, b"%\r\n\0x");
        assert_eq!(out, b"%25%0D%0A%00x");
    }
}
