//! The protocol suite's test server on sockjs-tokio (PROTOCOL.md §1): `/echo`, `/close`,
//! `/disabled_websocket_echo` and `/cookie_needed_echo`.
//!
//! ```text
//! cargo run --release -p sockjs-tokio --example tokio_test_server -- 127.0.0.1:8081 \
//!     [--sockjs-url URL] [--heartbeat-ms N] [--disconnect-ms N] \
//!     [--permessage-deflate] [--permessage-deflate-takeover] [--tls-cert PEM --tls-key PEM]
//!     [--axum]
//! ```
//!
//! `--permessage-deflate` offers permessage-deflate (RFC 7692) on the WebSocket endpoints,
//! without context takeover; `--permessage-deflate-takeover` with it. `--tls-cert` and
//! `--tls-key` serve HTTPS and WSS with that certificate chain and key.
//!
//! Serves with `sockjs_tokio::serve` by default, or mounted in axum with `--axum` (plain
//! HTTP only). Prints `listening on http://ADDR` (`https://` with TLS) once bound, then
//! runs until killed.
//!
//! Runs on a current-thread runtime when it may use one CPU (the benchmark pins it to one),
//! on the multi-thread runtime otherwise: see "One core: a current-thread runtime" in
//! DEPLOYMENT.md.

use std::net::SocketAddr;
use std::process::ExitCode;

use sockjs_core::driver::suite::{self, Args};
use sockjs_tokio::{Routes, SockJs};

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

fn main() -> ExitCode {
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let runtime = if one_core {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match runtime {
        Ok(runtime) => runtime.block_on(serve()),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!(
                "{message}\nusage: tokio_test_server {} [--axum]",
                suite::USAGE
            );
            return ExitCode::from(2);
        }
    };
    let axum = match args.rest.as_slice() {
        [] => false,
        [flag] if flag == "--axum" => true,
        [other, ..] => {
            eprintln!(
                "unknown option {other}\nusage: tokio_test_server {} [--axum]",
                suite::USAGE
            );
            return ExitCode::from(2);
        }
    };
    let tls = match args.tls.as_ref().map(|files| files.load()).transpose() {
        Ok(tls) => tls,
        Err(error) => {
            eprintln!("cannot load the TLS certificate and key: {error}");
            return ExitCode::from(2);
        }
    };
    if axum && tls.is_some() {
        eprintln!("--axum serves plain HTTP only: leave out --tls-cert and --tls-key");
        return ExitCode::from(2);
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot bind {}: {error}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.addr);
    // The routers below strip the mount path, so the services see paths relative to it.
    let services: Vec<_> = suite::services(&args.base)
        .into_iter()
        .map(|mut service| {
            service.options.prefix.clear();
            let app = service.app;
            (
                service.prefix,
                SockJs::new(service.options, move |s| app.run(s)),
            )
        })
        .collect();
    println!("listening on {scheme}://{addr}");
    let result = if axum {
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
        let config = sockjs_tokio::Config {
            tls,
            ..sockjs_tokio::Config::default()
        };
        sockjs_tokio::serve(listener, routes).config(config).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("server failed: {error}");
            ExitCode::FAILURE
        }
    }
}
