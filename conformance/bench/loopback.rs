//! The address argument of the bench's echo servers.

use std::net::SocketAddr;
use std::process::ExitCode;

/// The first argument as a loopback address (default `127.0.0.1:0`), or the exit code
/// after saying why not: the bench servers never listen beyond this machine.
pub fn addr_from_args(program: &str) -> Result<SocketAddr, ExitCode> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("usage: {program} [ADDR]: bad address {addr:?}: {e}");
            return Err(ExitCode::from(2));
        }
    };
    if !addr.ip().is_loopback() {
        eprintln!("{program}: refusing to listen on a non-loopback address {addr}");
        return Err(ExitCode::from(2));
    }
    Ok(addr)
}
