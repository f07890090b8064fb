//! The protocol suite's test server: `/echo`, `/close`, `/disabled_websocket_echo` and
//! `/cookie_needed_echo` (PROTOCOL.md §1).
//!
//! ```text
//! cargo run --release -p sockjs-tokio --example test_server -- 127.0.0.1:8081 \
//!     [--sockjs-url URL] [--heartbeat-ms N] [--disconnect-ms N] [--axum]
//! ```
//!
//! Serves with `sockjs_tokio::serve` by default, or mounted in axum with `--axum`. Prints
//! `listening on http://ADDR` once bound, then runs until killed.

use std::net::SocketAddr;
use std::time::Duration;

use sockjs_tokio::{Options, Routes, Session, SockJs};

struct Args {
    addr: String,
    sockjs_url: Option<String>,
    heartbeat: Option<Duration>,
    disconnect: Option<Duration>,
    axum: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:8081".to_owned(),
        sockjs_url: None,
        heartbeat: None,
        disconnect: None,
        axum: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--sockjs-url" => args.sockjs_url = Some(value("--sockjs-url")?),
            "--heartbeat-ms" => args.heartbeat = Some(millis(&value("--heartbeat-ms")?)?),
            "--disconnect-ms" => args.disconnect = Some(millis(&value("--disconnect-ms")?)?),
            "--axum" => args.axum = true,
            "-h" | "--help" => {
                return Err(
                    "usage: test_server [ADDR] [--sockjs-url URL] [--heartbeat-ms N] \
                            [--disconnect-ms N] [--axum]"
                        .to_owned(),
                );
            }
            other if !other.starts_with('-') => args.addr = other.to_owned(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn millis(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("not a number of milliseconds: {s}"))
}

async fn echo(mut session: Session) {
    while let Some(text) = session.recv().await {
        if session.send(text).is_err() {
            break;
        }
    }
}

async fn close(session: Session) {
    let _ = session.close(3000, "Go away!");
}

fn services(args: &Args) -> Vec<(&'static str, SockJs)> {
    let mut base = Options {
        hixie76: true,
        ..Options::default()
    };
    if let Some(url) = &args.sockjs_url {
        base.sockjs_url = url.clone();
    }
    if let Some(d) = args.heartbeat {
        base.heartbeat_delay = d;
    }
    if let Some(d) = args.disconnect {
        base.disconnect_delay = d;
    }
    vec![
        (
            "/echo",
            SockJs::new(
                Options {
                    response_limit: 4096,
                    ..base.clone()
                },
                echo,
            ),
        ),
        ("/close", SockJs::new(base.clone(), close)),
        (
            "/disabled_websocket_echo",
            SockJs::new(
                Options {
                    websocket: false,
                    ..base.clone()
                },
                echo,
            ),
        ),
        (
            "/cookie_needed_echo",
            SockJs::new(
                Options {
                    jsessionid: true,
                    ..base
                },
                echo,
            ),
        ),
    ]
}

/// Copies axum's connection info and original URI into the extensions the service reads.
fn from_axum(mut req: axum::extract::Request) -> axum::extract::Request {
    use axum::extract::{ConnectInfo, OriginalUri};
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let addr = *addr;
        req.extensions_mut().insert(sockjs_tokio::PeerAddr(addr));
    }
    if let Some(OriginalUri(uri)) = req.extensions().get::<OriginalUri>() {
        let uri = uri.clone();
        req.extensions_mut().insert(sockjs_tokio::OriginalUri(uri));
    }
    req
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot bind {}: {error}", args.addr);
            std::process::exit(1);
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| args.addr.clone(), |a| a.to_string());
    let services = services(&args);
    println!("listening on http://{addr}");
    let result = if args.axum {
        use tower::ServiceExt as _;
        let mut app = axum::Router::new();
        for (prefix, service) in services {
            app = app.nest_service(prefix, service.map_request(from_axum));
        }
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app).await
    } else {
        let mut routes = Routes::new();
        for (prefix, service) in services {
            routes = routes.mount(prefix, service);
        }
        sockjs_tokio::serve(listener, routes).await
    };
    if let Err(error) = result {
        eprintln!("server failed: {error}");
        std::process::exit(1);
    }
}
