//! The §7.1.6 abort stress checks (`conformance::abort_stress`) against both adapters,
//! started in-process on ephemeral loopback ports: for each adapter once on an otherwise
//! idle machine and once while CPU hogs (two spinning threads per core) compete with the
//! server for the processors.
//!
//! Every round closes an attached receiver's socket and sends the next receiving request
//! for the same session at once; a server that handles that request before it notices the
//! closed connection answers 2010 instead of `o` / `c[1002,...]`. The four runs all happen
//! before the test reports, so one failing run still shows the others.
//!
//! `SOCKJS_ABORT_ROUNDS=N` changes the number of rounds per check (default 200).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use conformance::{Config, Report, Status};
use sockjs_core::Options;
use support::{ADAPTERS, Adapter, Settings, start};

/// Threads spinning on arithmetic until dropped.
struct Hogs {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<u64>>,
}

impl Hogs {
    /// Two hogs per available core.
    fn start() -> Hogs {
        let cores = thread::available_parallelism().map_or(2, usize::from);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..2 * cores)
            .map(|i| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut x = i as u64 + 1;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = x
                                .wrapping_mul(6_364_136_223_846_793_005)
                                .wrapping_add(1_442_695_040_888_963_407);
                        }
                    }
                    x
                })
            })
            .collect();
        Hogs { stop, threads }
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn rounds() -> usize {
    std::env::var("SOCKJS_ABORT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(conformance::runner::DEFAULT_ABORT_ROUNDS)
}

/// One run of the abort stress checks against a fresh server, one check at a time.
fn run(adapter: Adapter, busy: bool) -> Report {
    let target = start(adapter, Settings::new(Options::default()));
    let config = Config {
        threads: 1,
        // Rounds take milliseconds; a server that stalls fails the check in bounded time.
        check_timeout: Duration::from_secs(20),
        ..Config::new(format!("http://{}", target.addr)).abort_rounds(rounds())
    };
    let hogs = busy.then(Hogs::start);
    let report = conformance::abort_stress(&config);
    drop(hogs);
    report
}

#[test]
fn abort_stress_checks_against_both_adapters_idle_and_busy() {
    let started = Instant::now();
    let mut failed = Vec::new();
    for adapter in ADAPTERS {
        for busy in [false, true] {
            let load = if busy { "busy" } else { "idle" };
            let report = run(adapter, busy);
            println!(
                "== {adapter:?}, {load} machine: {} in {:.1} s",
                report.summary(),
                report.elapsed.as_secs_f64()
            );
            print!("{}", report.table(false));
            assert_eq!(report.results.len(), 5, "one check per receiving transport");
            for r in &report.results {
                assert!(
                    !matches!(r.status, Status::Skip(_)),
                    "{} was skipped",
                    r.name
                );
                if let Status::Fail(reason) = &r.status {
                    failed.push(format!("{adapter:?} ({load}) {}: {reason}", r.name));
                }
            }
        }
    }
    println!(
        "abort stress: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failed.is_empty(),
        "{} abort stress failures:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
