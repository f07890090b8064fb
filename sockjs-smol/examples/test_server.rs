//! The SockJS protocol suite's test server (PROTOCOL.md §1): `/echo`, `/close`,
//! `/disabled_websocket_echo` and `/cookie_needed_echo`.
//!
//! ```text
//! cargo run --release -p sockjs-smol --example test_server -- 127.0.0.1:8081 \
//!     [--sockjs-url URL] [--heartbeat-ms N] [--disconnect-ms N]
//! ```
//!
//! Prints `listening on http://ADDR` once bound (the port may be 0), then runs until killed.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::time::Duration;

use async_io::Async;
use sockjs_smol::{Options, Server, Session};

struct Args {
    addr: SocketAddr,
    sockjs_url: Option<String>,
    heartbeat: Option<Duration>,
    disconnect: Option<Duration>,
}

const USAGE: &str =
    "usage: test_server [ADDR] [--sockjs-url URL] [--heartbeat-ms N] [--disconnect-ms N]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
        sockjs_url: None,
        heartbeat: None,
        disconnect: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let millis = |v: String| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("bad number {v:?}: {e}"))
        };
        match arg.as_str() {
            "--sockjs-url" => args.sockjs_url = Some(value("--sockjs-url")?),
            "--heartbeat-ms" => args.heartbeat = Some(millis(value("--heartbeat-ms")?)?),
            "--disconnect-ms" => args.disconnect = Some(millis(value("--disconnect-ms")?)?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            addr if !addr.starts_with('-') => {
                args.addr = addr
                    .parse()
                    .map_err(|e| format!("bad address {addr:?}: {e}"))?;
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(args)
}

async fn echo(mut session: Session) {
    while let Some(message) = session.recv().await {
        let _ = session.send(&message);
    }
}

async fn close(session: Session) {
    session.close(3000, "Go away!");
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut base = Options {
        hixie76: true,
        ..Options::default()
    };
    if let Some(url) = args.sockjs_url {
        base.sockjs_url = url;
    }
    if let Some(heartbeat) = args.heartbeat {
        base.heartbeat_delay = heartbeat;
    }
    if let Some(disconnect) = args.disconnect {
        base.disconnect_delay = disconnect;
    }
    let server = Server::new()
        .service(
            "/echo",
            Options {
                response_limit: 4096,
                ..base.clone()
            },
            echo,
        )
        .and_then(|s| s.service("/close", base.clone(), close))
        .and_then(|s| {
            s.service(
                "/disabled_websocket_echo",
                Options {
                    websocket: false,
                    ..base.clone()
                },
                echo,
            )
        })
        .and_then(|s| {
            s.service(
                "/cookie_needed_echo",
                Options {
                    jsessionid: true,
                    ..base.clone()
                },
                echo,
            )
        });
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            eprintln!("invalid options: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match Async::<TcpListener>::bind(args.addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    match listener.get_ref().local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
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
