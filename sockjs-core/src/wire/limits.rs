//! Size limits that bound everything the request decoder buffers.

/// Bounds applied by [`RequestDecoder`](super::RequestDecoder) to every request.
///
/// Each limit is checked as soon as it is exceeded, even while bytes are still
/// trickling in, so a peer can never make the decoder hold more than these
/// bounds (plus whatever the caller read in one go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most header fields in one request head. Over it: `431`. Default: 100.
    pub max_headers: usize,
    /// Most bytes in one request head (request line, header fields and the
    /// blank line that ends them), and separately in the trailer section of a
    /// chunked body. Over it: `431`. Default: 16 KiB.
    pub max_head_bytes: usize,
    /// Most bytes in one decoded request body. Over it: `413`. Default: 256 KiB.
    pub max_body_bytes: usize,
}

impl Limits {
    /// The default limits: 100 headers, 16 KiB of head, 256 KiB of body.
    pub const DEFAULT: Limits = Limits {
        max_headers: 100,
        max_head_bytes: 16 * 1024,
        max_body_bytes: 256 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
