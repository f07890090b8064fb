//! Sans-IO SockJS server engine.
#![forbid(unsafe_code)]

pub mod wire;
