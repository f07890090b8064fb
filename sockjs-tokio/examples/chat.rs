//! A chat room: a SockJS service mounted in axum, and a single page that talks to it with
//! sockjs-client over the transport of your choice.
//!
//! ```text
//! cargo run --release -p sockjs-tokio --example chat -- [ADDR] [--sockjs-url URL]
//!     [--sockjs-file PATH] [--node NAME] [--redis URL]
//! ```
//!
//! Then open http://127.0.0.1:8080 (the default ADDR) in a few browser tabs. The page (and
//! the service's iframe page) loads sockjs-client from a CDN; `--sockjs-url` changes
//! where from, and `--sockjs-file PATH` (e.g. `node_modules/sockjs-client/dist/
//! sockjs.min.js` after `npm i sockjs-client`) makes the chat serve that copy itself at
//! `/sockjs.min.js`, for machines without the CDN. The page says so when it cannot load
//! the client.
//!
//! Several instances share one room through Redis pub/sub (build with `--features redis`),
//! and may run on either adapter (`-p sockjs-smol` serves the same chat on smol):
//!
//! ```text
//! cargo run --release -p sockjs-smol --features redis --example chat -- \
//!     127.0.0.1:8081 --node a --redis redis://127.0.0.1:6379/
//! cargo run --release -p sockjs-tokio --features redis --example chat -- \
//!     127.0.0.1:8082 --node b --redis redis://127.0.0.1:6379/
//! ```
//!
//! and put a load balancer with sticky routing in front of them (see DEPLOYMENT.md). Each
//! instance names itself (`--node`, default its address) in an `X-Node` response header
//! and in what it sends, so you can see where each session lives. SIGTERM or Ctrl-C shuts
//! an instance down gracefully: its sessions get `1001 "Server shutting down"`.
//!
//! The command line, the session handler and the page are shared with sockjs-smol's chat
//! (`examples/chat/` at the top of the repository); this file is the tokio side: axum
//! serves the page and `GET /metrics` and mounts the service.

use std::time::Duration;

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use sockjs_tokio as adapter;
use sockjs_tokio::SockJs;

#[path = "../../examples/chat/mod.rs"]
pub(crate) mod chat;

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The chat's axum app: the service nested at [`chat::PREFIX`], the page, the metrics and
/// the `X-Node` header; and the service, for graceful shutdown. Call it inside the runtime:
/// with `--redis`, the hub's tasks are spawned on it.
pub fn app(args: &chat::Args, node: &str) -> (axum::Router, SockJs) {
    let hub = args.hub();
    let node_header = HeaderValue::from_str(node).unwrap_or(HeaderValue::from_static("?"));

    // The three lines that matter: build the service, mount it, serve.
    let chat_node = node.to_owned();
    let config = adapter::Config {
        shutdown_code: chat::SHUTDOWN_CODE,
        shutdown_reason: chat::SHUTDOWN_REASON.to_owned(),
        ..adapter::Config::default()
    };
    let built = SockJs::builder(args.options())
        .config(config)
        .build(move |session| chat::session(hub.clone(), chat_node.clone(), session));
    let service = match built {
        Ok(service) => service,
        Err(error) => {
            eprintln!("invalid options: {error}");
            std::process::exit(2);
        }
    };
    let page = args.page();
    let mut app = axum::Router::new().route("/", get(move || async move { Html(page) }));
    if let Some(script) = args.script() {
        let script = (
            [(CONTENT_TYPE, "application/javascript; charset=utf-8")],
            script,
        );
        app = app.route(chat::SCRIPT_PATH, get(move || async move { script }));
    }
    let counted = service.clone();
    app = app.route(
        chat::METRICS_PATH,
        get(move || {
            let mut metrics = counted.metrics();
            // Nested by axum, the service has no prefix of its own: label it by its mount.
            chat::PREFIX.clone_into(&mut metrics.service);
            let text = chat::metrics_text(&[metrics]);
            async move { ([(CONTENT_TYPE, chat::METRICS_TYPE)], text) }
        }),
    );
    let app =
        app.nest_service(chat::PREFIX, service.clone())
            .layer(axum::middleware::map_response(
                move |mut response: Response| {
                    let node = node_header.clone();
                    async move {
                        response.headers_mut().insert("x-node", node);
                        response
                    }
                },
            ));
    (app, service)
}

#[tokio::main]
async fn main() {
    chat::log_to_stderr();
    let args = chat::Args::parse();
    let (listener, node) = args.listen();
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen: {error}");
            std::process::exit(1);
        }
    };
    let (app, service) = app(&args, &node);

    let closing = service.clone();
    // sockjs_tokio::serve tunes every accepted socket; under axum::serve, ask for it:
    // TCP_NODELAY (streaming transports write one small chunk per frame, which Nagle's
    // algorithm would hold back ~200 ms) and the TCP user timeout that frees a silently
    // cut client's session (DEPLOYMENT.md, "Clients that vanish").
    let tuning = adapter::Config::default();
    let listener = listener.tap_io(move |tcp| tuning.tune_tcp(tcp));
    let (stopping, stopped) = tokio::sync::oneshot::channel();
    // With each connection's peer address (axum's `ConnectInfo`, which sockjs-tokio's
    // `axum` feature reads), without which no session has a client address, behind a
    // balancer's `trusted_proxies` either.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop_signal().await;
        println!("node {node}: shutting down");
        // No session opens from now on; polls and streams get the close frame and end,
        // so axum's drain can finish; WebSockets get it and close.
        closing.shutdown();
        let _ = stopping.send(());
    });
    // axum waits for every connection, also one a client holds open half-sent: the
    // shutdown gets the same bound as sockjs_tokio::serve's (Config::shutdown_timeout).
    let bound = adapter::Config::default().shutdown_timeout;
    let served = async move {
        let mut served = std::pin::pin!(served.into_future());
        tokio::select! {
            result = &mut served => Some(result),
            () = async {
                let _ = stopped.await;
                tokio::time::sleep(bound).await;
            } => None,
        }
    };
    match served.await {
        Some(Ok(())) => {}
        Some(Err(error)) => {
            eprintln!("server failed: {error}");
            std::process::exit(1);
        }
        None => eprintln!("shutdown timed out after {bound:?}: connections left open"),
    }
    // WebSockets live outside the HTTP connections axum waited for: give them a moment to
    // send their close frames.
    service.settled(Duration::from_secs(1)).await;
}
