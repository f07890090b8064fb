//! SockJS server on tokio: a tower service for axum and hyper, and a standalone server.
//!
//! This crate will drive the sans-IO [`sockjs_core`] engine with real sockets and clocks
//! (see the sockjs-tokio issue). It currently exports nothing.
#![forbid(unsafe_code)]
