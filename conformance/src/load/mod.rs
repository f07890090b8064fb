//! A load generator for SockJS echo services (the engine of the `sockjs-load` binary).
//!
//! N concurrent sessions each keep W messages in flight against an echo service, over
//! WebSocket, xhr-streaming, xhr-polling or eventsource (or a plain WebSocket without
//! SockJS framing, for a raw echo server). Every echo is checked for content and order.
//! The run reports messages per second, round-trip percentiles and errors; given the
//! server's PID it also reports the server's CPU time over the measured interval
//! (`/proc/PID/stat`), messages per server CPU-second and resident memory. An idle mode
//! opens N WebSocket sessions and reports the server's memory per session. With
//! `--permessage-deflate` the WebSocket sessions run on the suite's own client, offer
//! permessage-deflate, and the run reports the bytes on the wire per echo.
//!
//! Only loopback addresses are accepted as targets, and every phase is bounded in time.

pub mod args;
pub mod hist;
pub mod http;
pub mod procfs;
pub mod report;
pub mod run;
pub mod track;
mod wsdeflate;
mod wsload;
mod xhr;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

pub use args::{Command, Config, Transport, USAGE, parse};
pub use run::{Summary, run};

/// `EMFILE` (per-process open-file limit reached).
const EMFILE: i32 = 24;
/// `ENFILE` (system-wide open-file limit reached).
const ENFILE: i32 = 23;
/// `EADDRNOTAVAIL` (no free local port).
const EADDRNOTAVAIL: i32 = 99;

/// A failure of one session: a kind (for counting) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// Short category, e.g. `connect`, `emfile`, `http`, `protocol`.
    pub kind: &'static str,
    /// What happened.
    pub msg: String,
}

impl LoadError {
    /// An error of `kind`.
    pub fn new(kind: &'static str, msg: impl Into<String>) -> Self {
        LoadError {
            kind,
            msg: msg.into(),
        }
    }

    /// An I/O error during `what`, with open-file and port exhaustion told apart.
    pub fn io(what: &str, e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(EMFILE) => LoadError::new(
                "emfile",
                format!("{what}: too many open files (EMFILE): raise the limit with `ulimit -n`"),
            ),
            Some(ENFILE) => LoadError::new(
                "emfile",
                format!("{what}: system-wide open-file limit reached (ENFILE)"),
            ),
            Some(EADDRNOTAVAIL) => LoadError::new(
                "no_port",
                format!("{what}: no free local port (EADDRNOTAVAIL)"),
            ),
            _ if e.kind() == io::ErrorKind::TimedOut => {
                LoadError::new("timeout", format!("{what}: timed out"))
            }
            _ => LoadError::new("io", format!("{what}: {e}")),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.msg)
    }
}

impl std::error::Error for LoadError {}

/// Opens a TCP connection with TCP_NODELAY, within `timeout`.
pub async fn connect_tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, LoadError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| LoadError::new("timeout", format!("connect to {addr}: timed out")))?
        .map_err(|e| LoadError::io("connect", &e))?;
    stream
        .set_nodelay(true)
        .map_err(|e| LoadError::io("set TCP_NODELAY", &e))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_classified() {
        let e = LoadError::io("connect", &io::Error::from_raw_os_error(EMFILE));
        assert_eq!(e.kind, "emfile");
        assert!(e.msg.contains("ulimit -n"));
        let e = LoadError::io("connect", &io::Error::from_raw_os_error(EADDRNOTAVAIL));
        assert_eq!(e.kind, "no_port");
        let e = LoadError::io("read", &io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(e.kind, "io");
    }
}
