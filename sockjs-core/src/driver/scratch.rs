//! The thread's spare buffers: where connections read and encode, so that a connection
//! waiting for its peer (most of them, most of the time) holds no buffer of its own.
//!
//! Three per thread, shared by every connection the thread serves:
//!
//! - the read buffer ([`with_read_buffer`]): bytes read land here and are handled (the
//!   WebSocket pump) or copied to where they must stay (an HTTP connection's unparsed
//!   input) before the call returns;
//! - the write buffer ([`with_write_buffer`]): what is encoded and written in one go; what
//!   the socket did not take is copied out by the caller;
//! - the spare response buffer ([`SpareBuffer`]): taken by a connection while a response
//!   is encoded and written across `.await`s, given back once written.
//!
//! A buffer that grew past [`KEEP`] is freed instead of kept, so one huge message does not
//! pin its size on the thread for good.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::thread::LocalKey;

use bytes::BytesMut;

/// Bytes [`with_read_buffer`] offers at a time.
pub const READ_BUFFER: usize = 16 * 1024;

/// A spare buffer that grew past this many bytes is freed after use rather than kept.
pub const KEEP: usize = 256 * 1024;

thread_local! {
    static READS: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_BUFFER].into_boxed_slice());
    static WRITES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static RESPONSES: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Runs `f` with the thread's read buffer ([`READ_BUFFER`] bytes; their content is
/// whatever an earlier read left).
///
/// A nested call gets a buffer of its own. Not for thread-local destructors (like
/// [`LocalKey::with`], it panics there).
///
/// ```
/// use sockjs_core::driver::scratch::{READ_BUFFER, with_read_buffer};
/// let n = with_read_buffer(|buf| {
///     buf[..3].copy_from_slice(b"abc");
///     buf.len()
/// });
/// assert_eq!(n, READ_BUFFER);
/// ```
#[inline]
pub fn with_read_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    READS.with(|reads| {
        let (mut shared, mut own);
        let buf: &mut [u8] = match reads.try_borrow_mut() {
            Ok(borrowed) => {
                shared = borrowed;
                &mut shared
            }
            Err(_) => {
                own = vec![0; READ_BUFFER];
                &mut own
            }
        };
        // One call of `f`, so that it is inlined here as if written in place.
        f(buf)
    })
}

/// Runs `f` with the thread's write buffer, empty. What it holds afterwards is dropped (a
/// buffer that grew past [`KEEP`] is freed).
///
/// A nested call gets a buffer of its own. Not for thread-local destructors (like
/// [`LocalKey::with`], it panics there).
///
/// ```
/// use sockjs_core::driver::scratch::with_write_buffer;
/// let len = with_write_buffer(|out| {
///     out.extend_from_slice(b"frame");
///     out.len()
/// });
/// assert_eq!(len, 5);
/// assert!(with_write_buffer(|out| out.is_empty()));
/// ```
#[inline]
pub fn with_write_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    WRITES.with(|writes| {
        let (mut shared, mut own);
        let buf: &mut Vec<u8> = match writes.try_borrow_mut() {
            Ok(borrowed) => {
                shared = borrowed;
                &mut shared
            }
            Err(_) => {
                own = Vec::new();
                &mut own
            }
        };
        buf.clear();
        let result = f(buf);
        if buf.capacity() > KEEP {
            *buf = Vec::new();
        }
        result
    })
}

/// The thread's buffer in `slot`, or an empty one if it is out (taken by a caller further
/// up) or the thread is winding down.
#[inline]
fn take<T: Default>(slot: &'static LocalKey<RefCell<T>>) -> T {
    slot.try_with(|kept| {
        kept.try_borrow_mut()
            .map(|mut kept| std::mem::take(&mut *kept))
    })
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default()
}

/// Puts `buf` back in `slot` if `better(kept, &buf)` says it beats what is there; else
/// (or while the thread winds down) frees it.
#[inline]
fn give_back<T>(slot: &'static LocalKey<RefCell<T>>, buf: T, better: impl FnOnce(&T, &T) -> bool) {
    let _ = slot.try_with(|kept| {
        if let Ok(mut kept) = kept.try_borrow_mut() {
            if better(&kept, &buf) {
                *kept = buf;
            }
        }
    });
}

/// A response buffer borrowed from the thread: empty and without memory until something
/// is written into it (through [`DerefMut`]), which takes the thread's spare; given back,
/// empty, by [`SpareBuffer::release`] or when dropped.
///
/// An HTTP connection encodes a response into it, writes it (across `.await`s) and releases
/// it: a connection waiting between requests or stream items keeps no write buffer, and the
/// steady state allocates none. Two connections on one thread each writing at once get two
/// buffers; the larger one is kept.
///
/// ```
/// use sockjs_core::driver::scratch::SpareBuffer;
/// let mut out = SpareBuffer::default();
/// assert_eq!(out.capacity(), 0);
/// out.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
/// let capacity = out.capacity();
/// out.release();
/// assert_eq!(out.capacity(), 0);
/// out.extend_from_slice(b"again");
/// assert!(out.capacity() >= capacity, "the same buffer, taken again");
/// ```
#[derive(Debug, Default)]
pub struct SpareBuffer(BytesMut);

impl SpareBuffer {
    /// Gives the buffer back to the thread, empty (or frees it, if it grew past [`KEEP`]).
    pub fn release(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() == 0 || buf.capacity() > KEEP {
            return;
        }
        buf.clear();
        give_back(&RESPONSES, buf, |kept, buf| {
            kept.capacity() < buf.capacity()
        });
    }
}

impl Deref for SpareBuffer {
    type Target = BytesMut;

    fn deref(&self) -> &BytesMut {
        &self.0
    }
}

impl DerefMut for SpareBuffer {
    fn deref_mut(&mut self) -> &mut BytesMut {
        if self.0.capacity() == 0 {
            self.0 = take(&RESPONSES);
        }
        &mut self.0
    }
}

impl Drop for SpareBuffer {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_reads_get_a_buffer_of_their_own() {
        let (outer, inner) = with_read_buffer(|outer| {
            outer[0] = 1;
            let inner = with_read_buffer(|inner| {
                inner[0] = 2;
                inner.len()
            });
            (outer[0], inner)
        });
        assert_eq!(
            (outer, inner),
            (1, READ_BUFFER),
            "the nested call wrote elsewhere"
        );
        assert_eq!(with_read_buffer(|buf| buf.len()), READ_BUFFER);
    }

    #[test]
    fn nested_writes_get_a_buffer_of_their_own() {
        let (outer, inner) = with_write_buffer(|outer| {
            outer.extend_from_slice(b"outer");
            let inner = with_write_buffer(|inner| {
                inner.extend_from_slice(b"in");
                inner.len()
            });
            (outer.len(), inner)
        });
        assert_eq!((outer, inner), (5, 2));
    }

    #[test]
    fn a_huge_write_buffer_is_not_kept() {
        with_write_buffer(|out| out.resize(KEEP + 1, 0));
        assert!(with_write_buffer(|out| out.capacity()) <= KEEP);
    }

    #[test]
    fn a_released_response_buffer_is_taken_again_and_a_huge_one_freed() {
        let mut out = SpareBuffer::default();
        out.extend_from_slice(&[0; 4096]);
        let pointer = out.as_ptr();
        out.release();
        out.extend_from_slice(b"x");
        assert_eq!(
            out.as_ptr(),
            pointer,
            "the thread's spare, not a new buffer"
        );
        out.extend_from_slice(&vec![0; KEEP + 1]);
        drop(out);
        let mut next = SpareBuffer::default();
        next.extend_from_slice(b"x");
        assert!(
            next.capacity() <= KEEP,
            "the huge buffer was freed, not kept"
        );
    }
}
