//! Waiting for whichever of two futures completes first.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

/// The output of whichever of `a` and `b` completes first (`a` when both are ready); the
/// other is dropped.
pub(super) async fn or<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| match a.as_mut().poll(cx) {
        Poll::Ready(value) => Poll::Ready(value),
        Poll::Pending => b.as_mut().poll(cx),
    })
    .await
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
