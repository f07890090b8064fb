//! SockJS protocol conformance suite.
//!
//! This crate will hold named checks, one per rule of the SockJS protocol, that run against
//! any SockJS server URL (see the conformance issue). It currently exports nothing.
#![forbid(unsafe_code)]
