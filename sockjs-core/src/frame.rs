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
/// Each message is escaped once, when it is queued, straight into the frame being built:
/// the batch holds `a[` and the messages, so taking the frame ([`MessageBatch::take_frame_text`],
/// [`MessageBatch::take_frame`]) adds the `]` and hands the buffer over, with no copy, and
/// leaves the batch holding no buffer (an idle session keeps nothing of its last burst).
///
/// ```
/// use sockjs_core::frame::MessageBatch;
/// let mut batch = MessageBatch::default();
/// batch.push("a");
/// batch.push("b\"");
/// let mut out = Vec::new();
/// batch.write_frame(&mut out);
/// assert_eq!(out, br#"a["a","b\""]"#);
/// assert_eq!(batch.take_frame_text(), r#"a["a","b\""]"#);
/// assert!(batch.is_empty());
/// ```
#[derive(Debug, Default, Clone)]
pub struct MessageBatch {
    /// `a[` and the escaped messages, comma-separated: the frame less its `]`; empty while
    /// no message is queued. Text, so that a WebSocket frame of it needs no UTF-8 check.
    frame: String,
    count: usize,
}

/// The frame's opening, `a[`.
const OPENING: &str = "a[";

impl MessageBatch {
    /// Queues one message.
    pub fn push(&mut self, text: &str) {
        if self.count == 0 {
            // Room for the whole frame of a message with nothing to escape, and the
            // newline an xhr frame ends with: one allocation for the common batch of one.
            self.frame.reserve(text.len() + 6);
            self.frame.push_str(OPENING);
        } else {
            self.frame.push(',');
        }
        quote_message_str(&mut self.frame, text);
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
        self.frame.len().saturating_sub(OPENING.len())
    }

    /// Bytes the `a[...]` frame of this batch takes.
    pub fn frame_len(&self) -> usize {
        self.escaped_len() + 3
    }

    /// Appends the `a[...]` frame of the queued messages (the batch is left as it is).
    #[inline]
    pub fn write_frame(&self, out: &mut Vec<u8>) {
        if self.frame.is_empty() {
            out.extend_from_slice(b"a[");
        } else {
            out.extend_from_slice(self.frame.as_bytes());
        }
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
        text.push_str(if self.frame.is_empty() {
            OPENING
        } else {
            &self.frame
        });
        text.push(']');
        text
    }

    /// Takes the `a[...]` frame of the queued messages as text, leaving the batch empty and
    /// holding no buffer: the frame is the batch's own buffer, not a copy.
    pub fn take_frame_text(&mut self) -> String {
        if self.frame.is_empty() {
            self.frame.push_str(OPENING);
        }
        self.frame.push(']');
        self.count = 0;
        std::mem::take(&mut self.frame)
    }

    /// [`MessageBatch::take_frame_text`] as bytes, with room for one more byte (xhr's
    /// newline) reserved.
    ///
    /// ```
    /// use sockjs_core::frame::MessageBatch;
    /// let mut batch = MessageBatch::default();
    /// batch.push("x");
    /// let frame = batch.take_frame();
    /// assert_eq!(frame, br#"a["x"]"#);
    /// assert!(frame.capacity() > frame.len());
    /// ```
    pub fn take_frame(&mut self) -> Vec<u8> {
        let mut frame = self.take_frame_text().into_bytes();
        frame.reserve(1);
        frame
    }

    /// Drops messages pushed after the batch was `escaped_len` bytes and `count` messages.
    pub(crate) fn truncate(&mut self, escaped_len: usize, count: usize) {
        if count == 0 {
            self.frame = String::new();
            self.count = 0;
            return;
        }
        let len = OPENING.len() + escaped_len;
        // A length taken between messages: a character boundary (else nothing is dropped).
        debug_assert!(self.frame.is_char_boundary(len));
        if self.frame.is_char_boundary(len) {
            self.frame.truncate(len);
        }
        self.count = count;
    }

    /// Forgets the queued messages, keeping the buffer's capacity for the next batch.
    pub fn clear(&mut self) {
        self.frame.clear();
        self.count = 0;
        if self.frame.capacity() > 64 * 1024 {
            // One burst must not pin a large buffer to an idle session forever.
            self.frame.shrink_to(4 * 1024);
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

    #[test]
    fn s5_taken_frame_leaves_no_buffer_behind() {
        let mut batch = MessageBatch::default();
        batch.push(&"x".repeat(16 * 1024));
        batch.push("\u{2028}\"");
        let frame = batch.take_frame_text();
        assert!(frame.starts_with("a[\"xxx") && frame.ends_with(r#"","\u2028\""]"#));
        assert_eq!(frame.len(), 16 * 1024 + 16);
        assert!(batch.is_empty());
        assert_eq!(
            (batch.escaped_len(), batch.frame_text().as_str()),
            (0, "a[]")
        );
        // What an idle session keeps of its last burst: nothing.
        assert_eq!(batch.frame.capacity(), 0);

        batch.push("y");
        let bytes = batch.take_frame();
        assert_eq!(bytes, br#"a["y"]"#);
        assert!(bytes.capacity() > bytes.len(), "room for xhr's newline");
        assert_eq!(batch.frame.capacity(), 0);
        assert_eq!(MessageBatch::default().take_frame_text(), "a[]");
    }

    #[test]
    fn s5_truncated_batch_drops_only_the_later_messages() {
        let mut batch = MessageBatch::default();
        batch.push("a");
        let (len, count) = (batch.escaped_len(), batch.len());
        batch.push("é\n");
        batch.truncate(len, count);
        assert_eq!((batch.len(), batch.frame_text().as_str()), (1, r#"a["a"]"#));
        batch.truncate(0, 0);
        assert!(batch.is_empty());
        assert_eq!(batch.frame.capacity(), 0);
        batch.push("b");
        assert_eq!(batch.take_frame_text(), r#"a["b"]"#);
    }

    proptest::proptest! {
        /// Every way of reading a batch gives the same frame: the escaped messages,
        /// comma-separated, in `a[` and `]`.
        #[test]
        fn s5_every_form_of_the_frame_agrees(
            texts in proptest::collection::vec(proptest::prelude::any::<String>(), 0..6),
        ) {
            let mut batch = MessageBatch::default();
            let mut expected = String::from("a[");
            for (i, text) in texts.iter().enumerate() {
                batch.push(text);
                if i > 0 {
                    expected.push(',');
                }
                quote_message_str(&mut expected, text);
            }
            expected.push(']');
            let mut bytes = Vec::new();
            batch.write_frame(&mut bytes);
            proptest::prop_assert_eq!(&bytes, expected.as_bytes());
            proptest::prop_assert_eq!(batch.frame_len(), expected.len());
            proptest::prop_assert_eq!(batch.len(), texts.len());
            proptest::prop_assert_eq!(batch.frame_text(), expected.clone());
            let mut copy = batch.clone();
            proptest::prop_assert_eq!(copy.take_frame(), expected.as_bytes());
            proptest::prop_assert_eq!(batch.take_frame_text(), expected);
            proptest::prop_assert!(batch.is_empty());
        }
    }
}
