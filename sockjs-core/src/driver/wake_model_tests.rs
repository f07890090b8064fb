//! A property test of the driver's wake-ups: random requests on every HTTP transport and
//! WebSockets over an in-memory socket, sends, receives, closes, clients gone, sockets that
//! stop taking writes and drops over a service, with every pending poll watched. A task
//! that was not woken must find nothing new when it is polled anyway, and no task is woken
//! while a shard's lock is held.
//!
//! The first rule is stronger than "no lost wake-up": a poll may not act on what changed
//! since it registered unless it was told, even where a later wake would have come (a
//! wait that a poll for another reason ends sooner than its wake would). So a failure
//! names either a wait that nothing wakes, or a poll that does not wait for what it
//! registered for; both have been found and mended.
//!
//! The runtime's clock stands still until the test moves it, when it wakes the timers due;
//! its tasks (the shards' timer tasks, the handlers) and the application's waiting sends are
//! watched like the rest, and polled when woken as an executor would. So only the inputs
//! the test gives move anything: whatever becomes ready became so through them, and a poll
//! that was not woken must neither complete nor wake another task.

use std::time::Duration;

use proptest::prelude::*;

use crate::driver::test_world::{Op, World};

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..7, 0u8..3, 0u8..4, any::<bool>()).prop_map(|(kind, session, body, probed)| {
            Op::Request { kind, session, body, probed }
        }),
        4 => any::<usize>().prop_map(Op::Poll),
        2 => any::<usize>().prop_map(Op::Drain),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(at, probed)| Op::Gone(at, probed)),
        1 => any::<usize>().prop_map(Op::Drop),
        3 => any::<usize>().prop_map(Op::Recv),
        3 => (any::<usize>(), 0u16..300).prop_map(|(at, len)| Op::Send(at, len)),
        1 => any::<usize>().prop_map(Op::Close),
        1 => any::<usize>().prop_map(Op::Release),
        1 => (0u8..5).prop_map(Op::Upgrade),
        3 => any::<usize>().prop_map(Op::Pump),
        2 => (any::<usize>(), 0u8..6).prop_map(|(at, frame)| Op::Frame(at, frame)),
        1 => (any::<usize>(), 0u8..3).prop_map(|(at, pace)| Op::Reads(at, pace)),
        1 => any::<usize>().prop_map(Op::Abandon),
        2 => (any::<usize>(), 0u16..300).prop_map(|(at, len)| Op::SendWait(at, len)),
        1 => any::<usize>().prop_map(Op::ReadyWait),
        2 => (0u8..5).prop_map(Op::Advance),
        3 => Just(Op::RunWoken),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No lost wake-up and no wake under a shard's lock, whatever the inputs' order.
    #[test]
    fn every_wait_is_woken_and_never_under_a_lock(
        shards in 1usize..3,
        held in any::<bool>(),
        admits in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..160),
    ) {
        // Without a delivery wait, a send's answer is held for room alone: its wake is not
        // hidden behind the delivery's.
        let delivery_wait = if held { Duration::from_millis(500) } else { Duration::ZERO };
        let mut world = World::with(shards, delivery_wait, admits);
        for op in ops {
            world.run(op);
            world.check_no_progress_without_wake()?;
        }
    }
}
