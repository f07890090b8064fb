//! The session's inbound bound as its clients meet it: a send's held answer and a paused
//! WebSocket go on once the application has taken the queue down to half, and only an
//! application that leaves its queue past the bound is taken for stuck.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::driver::test_world::{Op, World};

/// A WebSocket whose reads were paused for the session's inbound bound (64 bytes here)
/// resumes once the application has taken the queue down to half of it, not sooner; an
/// application that takes nothing while the queue is past the bound for the stall time
/// (100 ms here) is stuck and its session closed, but one that stops with the queue back
/// under the bound is only slow: its client stays held back, its session open
/// (`Config::inbound_stall_timeout`).
#[test]
fn a_paused_websocket_resumes_at_half_and_only_a_queue_past_the_bound_stalls() {
    let mut world = World::new(1);
    world.run(Op::Upgrade(0));
    world.run(Op::Frame(0, 1));
    world.run(Op::Pump(0));
    // Three messages of 33 bytes each: past the bound, paused. The next frame waits.
    world.run(Op::Frame(0, 0));
    world.run(Op::Pump(0));
    let waiting = world.sockets[0].item.pipe.marks().0;
    assert!(waiting > 0, "the frame sent while paused is not read");
    // Two taken (the second poll counts the first as taken): 33 bytes left, under the
    // bound but over half of it. Nothing more for many stall times.
    world.run(Op::Recv(0));
    world.run(Op::Recv(0));
    for _ in 0..3 {
        world.run(Op::Advance(1));
        world.run(Op::Pump(0));
    }
    assert_eq!(
        world.sockets[0].item.pipe.marks().0,
        waiting,
        "still paused"
    );
    assert_eq!(world.sessions[0].item.state(), crate::SessionState::Open);
    world.run(Op::Recv(0));
    assert!(
        world.sockets[0].probe.woken.load(Ordering::Acquire),
        "woken at half"
    );
    world.run(Op::Pump(0));
    assert_eq!(world.sockets[0].item.pipe.marks().0, 0, "reads resumed");

    // Past the bound again, and nothing taken for the stall time: stuck.
    world.run(Op::Frame(0, 1));
    world.run(Op::Pump(0));
    world.run(Op::Advance(0));
    assert_eq!(world.sessions[0].item.state(), crate::SessionState::Open);
    world.run(Op::Advance(1));
    assert_eq!(world.sessions[0].item.state(), crate::SessionState::Closed);
}

/// The same for a send's answer held for the bound: it goes once the application has
/// taken the queue down to half; an application that stops with the queue back under the
/// bound keeps it held and its session open, one that takes nothing while the queue is
/// past the bound has its session closed.
#[test]
fn a_held_send_goes_at_half_and_only_a_queue_past_the_bound_stalls() {
    for stuck in [false, true] {
        let mut world = World::with(1, Duration::ZERO, false);
        world.run(Op::Request {
            kind: 0,
            session: 0,
            body: 0,
            probed: false,
        });
        // Three messages of 33 bytes each: past the bound, the answer held.
        world.run(Op::Request {
            kind: 5,
            session: 0,
            body: 1,
            probed: false,
        });
        world.run(Op::Poll(1));
        assert!(world.requests[1].pending, "held");
        if !stuck {
            // Two taken: 33 bytes, under the bound but over half of it.
            world.run(Op::Recv(0));
            world.run(Op::Recv(0));
        }
        for _ in 0..3 {
            world.run(Op::Advance(1));
            world.run(Op::Poll(1));
        }
        if stuck {
            assert_ne!(world.sessions[0].item.state(), crate::SessionState::Open);
            assert!(world.requests[1].item.ended || !world.requests[1].pending);
            continue;
        }
        assert!(world.requests[1].pending, "still held");
        assert_eq!(world.sessions[0].item.state(), crate::SessionState::Open);
        world.run(Op::Recv(0));
        assert!(
            world.requests[1].probe.woken.load(Ordering::Acquire),
            "woken at half"
        );
        world.run(Op::Poll(1));
        assert!(!world.requests[1].pending, "answered");
    }
}
