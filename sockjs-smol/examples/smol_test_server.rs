//! The protocol suite's test server on sockjs-smol (PROTOCOL.md §1): `/echo`, `/close`,
//! `/disabled_websocket_echo` and `/cookie_needed_echo`.
//!
//! ```text
//! cargo run --release -p sockjs-smol --example smol_test_server -- 127.0.0.1:8081 \
//!     [--sockjs-url URL] [--heartbeat-ms N] [--disconnect-ms N] \
//!     [--permessage-deflate] [--permessage-deflate-takeover] [--tls-cert PEM --tls-key PEM]
//! ```
//!
//! `--permessage-deflate` offers permessage-deflate (RFC 7692) on the WebSocket endpoints,
//! without context takeover; `--permessage-deflate-takeover` with it. `--tls-cert` and
//! `--tls-key` serve HTTPS and WSS with that certificate chain and key.
//!
//! Prints `listening on http://ADDR` (`https://` with TLS) once bound (the port may be 0),
//! then runs until killed.

use std::net::TcpListener;
use std::process::ExitCode;

use async_io::Async;
use sockjs_core::driver::suite::{self, Args};
use sockjs_smol::{Config, Server};

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) if args.rest.is_empty() => args,
        Ok(args) => {
            eprintln!(
                "unknown option {}\nusage: smol_test_server {}",
                args.rest[0],
                suite::USAGE
            );
            return ExitCode::from(2);
        }
        Err(message) => {
            eprintln!("{message}\nusage: smol_test_server {}", suite::USAGE);
            return ExitCode::from(2);
        }
    };
    let tls = match args.tls.as_ref().map(|files| files.load()).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("cannot load the TLS certificate and key: {e}");
            return ExitCode::from(2);
        }
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut server = Server::with_config(Config {
        tls,
        ..Config::default()
    });
    for service in suite::services(&args.base) {
        let app = service.app;
        server = match server.service(service.prefix, service.options, move |s| app.run(s)) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("invalid options: {e}");
                return ExitCode::from(2);
            }
        };
    }
    let listener = match Async::<TcpListener>::bind(args.addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    match listener.get_ref().local_addr() {
        Ok(addr) => println!("listening on {scheme}://{addr}"),
        Err(e) => {
            eprintln!("no local address: {e}");
            return ExitCode::FAILURE;
        }
    }
    match async_io::block_on(server.serve(listener)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
