//! SockJS frames, server to client (PROTOCOL.md §5).

use crate::escape::quote_message_str;

/// The open frame, `o`.
pub const OPEN: &[u8] = b"o";
/// The heartbeat frame, `h`.
pub const HEARTBEAT: &[u8] = b"h";

/// Appends a close frame, `c[code,"reason"]`, with the reason escaped as in §5.1.
///
/// ```
/// let mut out = Vec::new();
/// sockjs_core::frame::write_close(&mut out, 3000, "Go away!");
/// assert_eq!(out, br#"c[3000,"Go away!"]"#);
/// ```
pub fn write_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    // A close frame goes out once per session: one builder is worth the small copy.
    out.extend_from_slice(close(code, reason).as_bytes());
}

/// Returns a close frame as a string, built as text so that it needs no UTF-8 check.
///
/// ```
/// assert_eq!(sockjs_core::frame::close(3000, "Go away!"), r#"c[3000,"Go away!"]"#);
/// ```
pub fn close(code: u16, reason: &str) -> String {
    let mut out = String::with_capacity(reason.len() + 12);
    // Writing into a `String` cannot fail.
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("c[{code},"));
    quote_message_str(&mut out, reason);
    out.push(']');
    out
}

/// A batch of escaped messages waiting to be written as one `a[...]` frame.
///
/// Each message is escaped once, when it is queued, straight into the batch; the frame is
/// then `a[` + batch + `]`, with no second pass over the text.
///
/// ```
/// use sockjs_core::frame::MessageBatch;
/// let mut batch = MessageBatch::default();
/// batch.push("a");
/// batch.push("b\"");
/// let mut out = Vec::new();
/// batch.write_frame(&mut out);
/// assert_eq!(out, br#"a["a","b\""]"#);
/// ```
#[derive(Debug, Default, Clone)]
pub struct MessageBatch {
    /// Text, so that a WebSocket frame of it needs no UTF-8 check.
    escaped: String,
    count: usize,
}

impl MessageBatch {
    /// Queues one message.
    pub fn push(&mut self, text: &str) {
        if self.count > 0 {
            self.escaped.push(',');
        }
        quote_message_str(&mut self.escaped, text);
        self.count += 1;
    }

    /// How many messages are queued.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no message is queued.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the queued messages take once escaped.
    pub fn escaped_len(&self) -> usize {
        self.escaped.len()
    }

    /// Bytes the `a[...]` frame of this batch takes.
    pub fn frame_len(&self) -> usize {
        self.escaped.len() + 3
    }

    /// Appends the `a[...]` frame of the queued messages (the batch is left as it is).
    #[inline]
    pub fn write_frame(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"a[");
        out.extend_from_slice(self.escaped.as_bytes());
        out.push(b']');
    }

    /// The `a[...]` frame of the queued messages as text, as a WebSocket text frame carries
    /// it (the batch is left as it is).
    ///
    /// ```
    /// use sockjs_core::frame::MessageBatch;
    /// let mut batch = MessageBatch::default();
    /// batch.push("é\u{2028}");
    /// assert_eq!(batch.frame_text(), r#"a["é\u2028"]"#);
    /// ```
    pub fn frame_text(&self) -> String {
        let mut text = String::with_capacity(self.frame_len());
        text.push_str("a[");
        text.push_str(&self.escaped);
        text.push(']');
        text
    }

    /// Drops messages pushed after the batch was `escaped_len` bytes and `count` messages.
    pub(crate) fn truncate(&mut self, escaped_len: usize, count: usize) {
        // A length taken between messages: a character boundary (else nothing is dropped).
        debug_assert!(self.escaped.is_char_boundary(escaped_len));
        if self.escaped.is_char_boundary(escaped_len) {
            self.escaped.truncate(escaped_len);
        }
        self.count = count;
    }

    /// Forgets the queued messages, keeping the buffer's capacity for the next batch.
    pub fn clear(&mut self) {
        self.escaped.clear();
        self.count = 0;
        if self.escaped.capacity() > 64 * 1024 {
            // One burst must not pin a large buffer to an idle session forever.
            self.escaped.shrink_to(4 * 1024);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_close_frame_bytes() {
        assert_eq!(close(3000, "Go away!"), r#"c[3000,"Go away!"]"#);
        assert_eq!(
            close(2010, "Another connection still open"),
            r#"c[2010,"Another connection still open"]"#
        );
        assert_eq!(close(0, "\""), r#"c[0,"\""]"#);
        assert_eq!(close(65535, ""), r#"c[65535,""]"#);
    }

    #[test]
    fn s5_1_close_frame_text_and_bytes_agree() {
        for reason in [
            "",
            "Go away!",
            "\"\\\n\u{0}\u{7f}",
            "zażółć \u{2028} \u{fffe} 😀",
            "x\u{200c}y",
        ] {
            for code in [0, 7, 1000, 3000, 4999, 65535] {
                let mut bytes = Vec::new();
                write_close(&mut bytes, code, reason);
                assert_eq!(
                    close(code, reason).as_bytes(),
                    &bytes[..],
                    "{code} {reason:?}"
                );
                assert!(bytes.starts_with(format!("c[{code},\"").as_bytes()));
            }
        }
        assert_eq!(close(1000, "a\"\n\u{2028}"), r#"c[1000,"a\"\n\u2028"]"#);
    }

    #[test]
    fn s5_messages_frame_has_no_spaces() {
        let mut batch = MessageBatch::default();
        batch.push("a");
        batch.push("a");
        let mut out = Vec::new();
        batch.write_frame(&mut out);
        assert_eq!(out, br#"a["a","a"]"#);
        assert_eq!(batch.frame_len(), out.len());
    }
}
