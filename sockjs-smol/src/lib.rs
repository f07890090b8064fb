//! SockJS server on smol / async-io.
//!
//! This crate will drive the sans-IO [`sockjs_core`] engine with real sockets and clocks
//! (see the sockjs-smol issue). It currently exports nothing.
#![forbid(unsafe_code)]
