//! What an accept loop does when its listener's `accept` fails: the one decision both
//! adapters' servers share.

use std::io;
use std::time::Duration;

/// How long an accept loop waits before it tries again after [`AcceptError::Exhausted`].
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a failed `accept` means for the loop that called it.
///
/// ```
/// use std::io;
/// use sockjs_core::driver::AcceptError;
///
/// let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
/// assert_eq!(AcceptError::of(&reset), AcceptError::Connection);
/// let not_listening = io::Error::from(io::ErrorKind::NotConnected);
/// assert_eq!(AcceptError::of(&not_listening), AcceptError::Listener);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptError {
    /// That one connection failed before it was taken (its client aborted or reset it, a
    /// network error was pending on it), or the call was interrupted: accept the next one
    /// at once. Waiting would let a client that resets its connections slow everyone
    /// else's accept.
    Connection,
    /// The process or the system is out of something (file descriptors, socket buffers,
    /// memory), its policy refuses the call (a security module or a seccomp filter:
    /// `EACCES`, `EPERM`, which leave the connection waiting, so a retry at once would be
    /// refused again), or the error is not one this knows: wait [`ACCEPT_BACKOFF`] and try
    /// again, rather than spin until something changes.
    Exhausted,
    /// The listener itself is broken (closed, shut down, not listening, not a socket):
    /// every further `accept` would fail the same way. Stop accepting, shut down
    /// gracefully, and return the error.
    Listener,
}

impl AcceptError {
    /// What `error`, from a listener's `accept`, means.
    pub fn of(error: &io::Error) -> AcceptError {
        if let Some(code) = error.raw_os_error() {
            if let Some(known) = by_code(code) {
                return known;
            }
        }
        match error.kind() {
            io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable => AcceptError::Connection,
            // The system's `EINVAL` (`WSAEINVAL`: a listener that is not listening) is the
            // listener's. One with no OS code is std's and mio's own, for a connection
            // accepted without a peer address they know: macOS gives one reset before it
            // was taken on an IPv6 listener an empty address. That connection is closed
            // already; the listener is fine.
            io::ErrorKind::InvalidInput if error.raw_os_error().is_some() => AcceptError::Listener,
            io::ErrorKind::InvalidInput => AcceptError::Connection,
            io::ErrorKind::NotConnected => AcceptError::Listener,
            _ => AcceptError::Exhausted,
        }
    }
}

/// The codes `accept(2)` documents that have no [`io::ErrorKind`] of their own.
#[cfg(unix)]
fn by_code(code: i32) -> Option<AcceptError> {
    match code {
        // The listener: a closed descriptor, not a socket, not listening.
        libc::EBADF | libc::ENOTSOCK | libc::EFAULT | libc::EINVAL => Some(AcceptError::Listener),
        // Out of descriptors, buffers or memory.
        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => Some(AcceptError::Exhausted),
        // Errors of the new connection that Linux passes on (accept(2), "Error handling").
        libc::EPROTO
        | libc::ENOPROTOOPT
        | libc::EHOSTDOWN
        | libc::ENETDOWN
        | libc::ENETUNREACH
        | libc::EHOSTUNREACH => Some(AcceptError::Connection),
        #[cfg(any(target_os = "linux", target_os = "android"))]
        libc::ENONET => Some(AcceptError::Connection),
        _ => None,
    }
}

#[cfg(not(unix))]
fn by_code(_: i32) -> Option<AcceptError> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_accept_error_is_a_connection_s_the_system_s_or_the_listener_s() {
        let kind = |kind: io::ErrorKind| AcceptError::of(&io::Error::from(kind));
        assert_eq!(
            kind(io::ErrorKind::ConnectionAborted),
            AcceptError::Connection
        );
        assert_eq!(
            kind(io::ErrorKind::ConnectionReset),
            AcceptError::Connection
        );
        assert_eq!(kind(io::ErrorKind::Interrupted), AcceptError::Connection);
        assert_eq!(kind(io::ErrorKind::NotConnected), AcceptError::Listener);
        // std's and mio's error for a connection accepted with a peer address of no family
        // they know (macOS, a connection reset before it was taken): that connection's.
        let no_address = io::Error::new(io::ErrorKind::InvalidInput, "invalid argument");
        assert_eq!(AcceptError::of(&no_address), AcceptError::Connection);
        assert_eq!(kind(io::ErrorKind::OutOfMemory), AcceptError::Exhausted);
        assert_eq!(kind(io::ErrorKind::Other), AcceptError::Exhausted);
        #[cfg(unix)]
        {
            let code = |code: i32| AcceptError::of(&io::Error::from_raw_os_error(code));
            assert_eq!(code(libc::EMFILE), AcceptError::Exhausted);
            assert_eq!(code(libc::ENFILE), AcceptError::Exhausted);
            assert_eq!(code(libc::ENOBUFS), AcceptError::Exhausted);
            assert_eq!(code(libc::ENOMEM), AcceptError::Exhausted);
            assert_eq!(code(libc::EBADF), AcceptError::Listener);
            assert_eq!(code(libc::ENOTSOCK), AcceptError::Listener);
            assert_eq!(code(libc::EINVAL), AcceptError::Listener);
            assert_eq!(code(libc::ECONNABORTED), AcceptError::Connection);
            assert_eq!(code(libc::EPROTO), AcceptError::Connection);
            assert_eq!(code(libc::EINTR), AcceptError::Connection);
            // A policy's refusal leaves the connection queued: a retry at once would spin.
            assert_eq!(code(libc::EPERM), AcceptError::Exhausted);
            assert_eq!(code(libc::EACCES), AcceptError::Exhausted);
            assert_eq!(
                kind(io::ErrorKind::PermissionDenied),
                AcceptError::Exhausted
            );
            // Listed by accept(2) both as a listener's error and as a pending network
            // error: waited on, never the end.
            assert_eq!(code(libc::EOPNOTSUPP), AcceptError::Exhausted);
        }
    }
}
