//! Whole scripts of engine inputs on virtual time: see `scripts/engine.rs` for what is
//! drawn and what is checked.
#![no_main]

#[path = "../scripts/engine.rs"]
mod engine;

libfuzzer_sys::fuzz_target!(|script: engine::Script| {
    engine::run(script);
});
