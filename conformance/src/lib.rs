//! SockJS protocol conformance suite.
//!
//! Named checks, one or more per rule of the SockJS protocol (0.3.x, current suite), run
//! over real sockets against any server that exposes the four test services: `/echo`
//! (response_limit 4096), `/close` (closes each session on open with 3000 "Go away!"),
//! `/disabled_websocket_echo` and `/cookie_needed_echo`.
//!
//! The suite has its own HTTP/1.x client on raw bytes (exact chunk boundaries, HTTP/1.0,
//! exact headers), uses tungstenite for RFC 6455, a hand-written hixie-76 client, and a
//! hand-written RFC 6455 client with permessage-deflate ([`deflate`]).
//!
//! ```no_run
//! use std::time::Duration;
//! let report = conformance::run(
//!     &conformance::Config::new("http://127.0.0.1:8081")
//!         .heartbeat(Duration::from_millis(1000))
//!         .disconnect(Duration::from_millis(1500)),
//! );
//! report.assert_success();
//! ```
#![forbid(unsafe_code)]

pub mod badlink;
pub mod check;
mod checks;
pub mod cli;
pub mod deflate;
pub mod hostile;
pub mod http;
pub mod json;
pub mod load;
pub mod runner;
pub mod tls;
pub mod util;
pub mod ws;

pub use check::{Check, Ctx, Failure, Needs, Outcome};
pub use runner::{
    ABORT_STRESS, CheckResult, Config, Report, Status, abort_stress, all_checks, run, run_checks,
    selected_checks,
};
