//! Sans-IO SockJS server engine.
#![forbid(unsafe_code)]

pub mod engine;
pub mod escape;
pub mod frame;
pub mod handshake;
pub mod options;
pub mod output;
pub mod pages;
pub mod payload;
mod response;
pub mod route;
mod session;
mod timer;
pub mod transport;
pub mod wire;

pub use engine::{Engine, Start};
pub use options::{AbortPolicy, Options, OptionsError, OriginPolicy, ProtocolVersion};
pub use output::{
    CloseReason, Handshake, Output, RequestId, SendError, SessionInfo, SessionKey, SessionState,
};
pub use transport::Transport;
