//! The engine fuzz target's scripts under `cargo test` on a stable toolchain: the committed
//! seeds (`fuzz/seeds/engine`: `deep*` are scripts a fuzzing run found that open sessions
//! by the hundred), and random scripts drawn from random bytes as the fuzzer
//! draws them, each checked by the target's own invariants (`fuzz/scripts/engine.rs`).
//! Fuzzing goes deeper (`fuzz/run`); this keeps every CI run exercising the same checks.
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/scripts/engine.rs"]
mod engine;

use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;

/// Runs the script the fuzzer would make of `data`; the sessions it opened.
fn replay(data: &[u8]) -> usize {
    engine::Script::arbitrary_take_rest(Unstructured::new(data)).map_or(0, engine::run)
}

#[test]
fn engine_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/engine");
    let (mut seeds, mut opened) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        opened += replay(&std::fs::read(entry.unwrap().path()).unwrap());
        seeds += 1;
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
    // Bytes decode to scripts by the script's layout: after a change to `Op` or `Script`,
    // the `deep*` seeds are other scripts, and this fails until seeds of the new layout
    // (the corpus entries of a fuzzing run that open the most sessions) replace them.
    assert!(opened > 100, "the seeds reach sessions: {opened} opened");
}

/// Random bytes make scripts that reach sessions, not only refusals: the check below is
/// not vacuous.
#[test]
fn random_scripts_open_sessions() {
    let mut rng = proptest::test_runner::TestRng::deterministic_rng(
        proptest::test_runner::RngAlgorithm::ChaCha,
    );
    let opened: usize = (0..512)
        .map(|_| {
            let len = rng.random_range(0..4096);
            let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            replay(&data)
        })
        .sum();
    eprintln!("sessions opened by 512 random scripts: {opened}");
    assert!(opened > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_engine_scripts_keep_the_fuzz_targets_invariants(
        data in prop::collection::vec(any::<u8>(), 0..4096)
    ) {
        replay(&data);
    }
}
