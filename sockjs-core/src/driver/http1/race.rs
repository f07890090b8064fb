//! Waiting for whichever of two futures completes first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The output of whichever of `a` and `b` completes first (`a` when both are ready); the
/// other is dropped.
pub(super) fn or<T, A, B>(a: A, b: B) -> Or<A, B>
where
    A: Future<Output = T>,
    B: Future<Output = T>,
{
    Or { a, b }
}

pin_project_lite::pin_project! {
    /// See [`or`]. A future type of its own, which holds each future once: an `async fn`
    /// pinning its arguments would keep them twice, as its arguments and as the pinned
    /// locals, in every connection's future.
    pub(super) struct Or<A, B> {
        #[pin]
        a: A,
        #[pin]
        b: B,
    }
}

impl<T, A: Future<Output = T>, B: Future<Output = T>> Future for Or<A, B> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.project();
        match this.a.poll(cx) {
            Poll::Ready(value) => Poll::Ready(value),
            Poll::Pending => this.b.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::or;
    use std::future::{pending, ready};
    use std::task::{Context, Poll, Waker};

    fn poll_once<T>(future: impl std::future::Future<Output = T>) -> Poll<T> {
        let mut cx = Context::from_waker(Waker::noop());
        std::pin::pin!(future).poll(&mut cx)
    }

    #[test]
    fn the_first_ready_wins_and_the_left_one_first() {
        assert_eq!(poll_once(or(ready(1), ready(2))), Poll::Ready(1));
        assert_eq!(poll_once(or(pending(), ready(2))), Poll::Ready(2));
        assert_eq!(poll_once(or(ready(1), pending())), Poll::Ready(1));
        assert_eq!(poll_once(or(pending::<u8>(), pending())), Poll::Pending);
    }
}
