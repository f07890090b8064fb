//! Session churn and leaks, against sockjs-smol and sockjs-tokio: open and abandon many
//! sessions over polling transports, aborted streams and WebSockets that vanish without a
//! close, wait out the disconnect delay, and check that the adapters' session counts are
//! back to zero and the process's resident memory is back near its baseline.
//!
//! Its own test binary, so no other test shares the process while memory is measured.
//! The default run churns 3000 sessions per adapter; the long variant 100 000:
//!
//! ```text
//! SOCKJS_LONG_TESTS=1 cargo test --release -p conformance --test churn -- --nocapture
//! ```
//!
//! Memory is VmRSS from /proc/self/status (Linux; the check is skipped elsewhere). The
//! system allocator keeps freed memory in its arenas rather than returning every page, so
//! "back near the baseline" means within a fixed slack, not byte-exact.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use conformance::http::Request;
use sockjs_core::Options;
use support::*;

const DISCONNECT: Duration = Duration::from_millis(500);

/// Opens and abandons `n` sessions with `threads` client threads; returns the highest
/// session count seen.
fn churn(target: &Target, n: usize, threads: usize, limit: Duration) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let addr = target.addr;
    let host = target.host();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    thread::scope(|scope| {
        for _ in 0..threads {
            let next = next.clone();
            let errors = errors.clone();
            let host = host.clone();
            scope.spawn(move || {
                let mut conn = conformance::http::Conn::connect(&host, Duration::from_secs(5))
                    .expect("connect");
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || started.elapsed() > limit {
                        break;
                    }
                    let path = session("churn");
                    let outcome = match i % 20 {
                        // A WebSocket that vanishes without a close frame.
                        0 => {
                            let stream = TcpStream::connect(addr).expect("connect");
                            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
                            match tungstenite::client(
                                format!("ws://{host}{path}/websocket").as_str(),
                                stream,
                            ) {
                                Ok((mut ws, _)) => {
                                    let _ = ws.read();
                                    drop(ws);
                                    Ok(())
                                }
                                Err(e) => Err(format!("websocket: {e}")),
                            }
                        }
                        // A stream dropped after its open frame (an abort).
                        1 => {
                            let mut stream = TcpStream::connect(addr).expect("connect");
                            let request =
                                format!("POST {path}/xhr_streaming HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
                            stream.write_all(request.as_bytes()).ok();
                            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
                            let mut buf = [0u8; 4096];
                            let _ = std::io::Read::read(&mut stream, &mut buf);
                            Ok(())
                        }
                        // Polling sessions opened and never polled again.
                        2..=9 => conn
                            .roundtrip(&Request::new("GET", &format!("{path}/jsonp?c=cb")))
                            .map(|_| ())
                            .map_err(|e| e.0),
                        _ => conn
                            .roundtrip(&Request::new("POST", &format!("{path}/xhr")))
                            .map(|r| debug_assert_eq!(r.text(), "o\n"))
                            .map_err(|e| e.0),
                    };
                    if let Err(e) = outcome {
                        let mut errors = errors.lock().expect("lock");
                        if errors.len() < 5 {
                            errors.push(e);
                        }
                        conn = conformance::http::Conn::connect(&host, Duration::from_secs(5))
                            .expect("reconnect");
                    }
                }
            });
        }
        // Watch the count while the clients run.
        scope.spawn(|| {
            while next.load(Ordering::Relaxed) < n && started.elapsed() < limit {
                peak.fetch_max(target.session_count(), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
        });
    });
    let errors = errors.lock().expect("lock");
    assert!(errors.is_empty(), "{:?}: {errors:?}", target.adapter);
    assert!(
        next.load(Ordering::Relaxed) >= n,
        "{:?}: only {} sessions in {limit:?}",
        target.adapter,
        next.load(Ordering::Relaxed)
    );
    peak.load(Ordering::Relaxed)
}

fn wait_for_zero(target: &Target, limit: Duration) -> Duration {
    let started = Instant::now();
    while (target.session_count() > 0 || target.open_requests() > 0) && started.elapsed() < limit {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        target.session_count(),
        0,
        "{:?}: sessions left after the disconnect delay",
        target.adapter
    );
    assert_eq!(
        target.open_requests(),
        0,
        "{:?}: requests left after every client went",
        target.adapter
    );
    started.elapsed()
}

#[test]
fn churned_sessions_are_all_forgotten_and_memory_returns() {
    let (n, limit) = if long_tests() {
        (100_000, Duration::from_secs(600))
    } else {
        (3000, Duration::from_secs(60))
    };
    for adapter in ADAPTERS {
        let target = start(
            adapter,
            Settings::new(Options {
                disconnect_delay: DISCONNECT,
                ..Options::default()
            }),
        );
        // Warm up with one full round: allocator arenas, thread pools, connection buffers
        // and the engines' tables grow to their working size once.
        churn(&target, n.min(20_000), 4, limit);
        wait_for_zero(&target, Duration::from_secs(30));
        thread::sleep(Duration::from_millis(300));
        let before = rss_kib();
        let mut peak = 0;
        let mut rounds = Vec::new();
        let started = Instant::now();
        let mut done = 0;
        let mut drained = Duration::ZERO;
        // Rounds of at most 20 000 sessions, each waited out: a leak grows with every
        // round, allocator retention does not.
        while done < n {
            let size = (n - done).min(20_000);
            peak = peak.max(churn(&target, size, 4, limit));
            drained = wait_for_zero(&target, Duration::from_secs(30));
            done += size;
            rounds.push(rss_kib().unwrap_or(0));
        }
        let churn_time = started.elapsed();
        // Let handler tasks and connection tasks finish.
        thread::sleep(Duration::from_millis(300));
        let after = rss_kib();
        let opened = target.app.opened.load(Ordering::Relaxed);
        println!(
            "{adapter:?}: churned {n} sessions in {churn_time:?} (peak {peak} alive, \
             {opened} handlers started in all), all forgotten {drained:?} after the last; \
             VmRSS before {} KiB, after each round {rounds:?} KiB, at the end {} KiB",
            before.unwrap_or(0),
            after.unwrap_or(0)
        );
        assert!(peak > 0, "{adapter:?}: sessions were never counted");
        if let (Some(before), Some(after)) = (before, after) {
            let slack = 48 * 1024;
            assert!(
                after <= before + slack,
                "{adapter:?}: VmRSS grew from {before} KiB to {after} KiB"
            );
        }
    }
}
