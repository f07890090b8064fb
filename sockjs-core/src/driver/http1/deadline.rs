//! A connection's read deadline.

use std::pin::Pin;
use std::time::Instant;

use crate::driver::{Runtime, Timer};

/// A read deadline's timer, made the first time it is needed and re-armed lazily. Each
/// wait for a request has a deadline, and most are later than the one before (the next
/// request's head is due a header read timeout after the last response). A timer moved to
/// every wait's deadline costs the runtime's timer wheel or heap a removal and an
/// insertion per request; this one stays armed at the earliest deadline it was given and,
/// when it fires early, is set again to the deadline now due: about one re-arm per header
/// read timeout instead of one per request.
#[derive(Default)]
pub(super) struct Deadline {
    timer: Option<Pin<Box<dyn Timer>>>,
    /// Where `timer` is armed; `None` once it has fired (or before the first wait).
    armed: Option<Instant>,
}

impl Deadline {
    /// Arms the timer for `deadline` unless it is already armed no later.
    pub(super) fn arm(&mut self, runtime: &dyn Runtime, deadline: Instant) {
        if self.armed.is_some_and(|armed| armed <= deadline) {
            return;
        }
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.timer = Some(runtime.timer(deadline)),
        }
        self.armed = Some(deadline);
    }

    /// Waits until the timer fires (forever if it was never armed).
    pub(super) async fn fired(&mut self) {
        match &mut self.timer {
            Some(timer) => timer.as_mut().await,
            None => std::future::pending().await,
        }
        self.armed = None;
    }
}
