//! A chat room on smol: a SockJS service and the page that talks to it with sockjs-client
//! over the transport of your choice, both served by `sockjs_smol::Server`.
//!
//! ```text
//! cargo run --release -p sockjs-smol --example chat -- [ADDR] [--sockjs-url URL]
//!     [--sockjs-file PATH] [--node NAME] [--redis URL]
//! ```
//!
//! The same chat, page, flags and behaviour as sockjs-tokio's (`-p sockjs-tokio`); see
//! that example for running several instances on one Redis (`--features redis`) behind a
//! load balancer, where smol and tokio nodes share one room. SIGTERM or Ctrl-C shuts the
//! server down gracefully: sessions get `1001 "Server shutting down"`, and the server
//! waits for them to end (polling sessions stay closing for the disconnect delay, 5 s).
//!
//! The command line, the session handler and the page are shared with sockjs-tokio's chat
//! (`examples/chat/` at the top of the repository); this file is the smol side: the
//! server's fallback serves the page and `GET /metrics` (from the server's handle), its
//! `header` the node's name.

use async_io::Async;
use bytes::Bytes;
use futures_lite::{StreamExt as _, future};
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use sockjs_smol as adapter;
use sockjs_smol::{Config, Server, ServerHandle};

#[path = "../../examples/chat/mod.rs"]
pub(crate) mod chat;

/// What the server answers outside the service: the page at `/`, sockjs-client at
/// `/sockjs.min.js` with `--sockjs-file`, the metrics at `/metrics`, 404 elsewhere (as the
/// tokio example's axum router does).
fn page_or_404(
    request: &Request<Bytes>,
    page: &Bytes,
    script: Option<&Bytes>,
    server: &ServerHandle,
) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let known = [chat::METRICS_PATH, chat::SCRIPT_PATH, "/"].contains(&request.uri().path());
    if known && request.method() != Method::GET && request.method() != Method::HEAD {
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET,HEAD"));
    } else if request.uri().path() == chat::METRICS_PATH {
        let mut text = chat::metrics_text(&server.metrics());
        // What the server answered before a request reached the service (a head too large).
        server.unrouted().write_prometheus(&mut text);
        *response.body_mut() = text.into();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(chat::METRICS_TYPE));
    } else if let Some(script) = script.filter(|_| request.uri().path() == chat::SCRIPT_PATH) {
        *response.body_mut() = script.clone();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/javascript; charset=utf-8"),
        );
    } else if request.uri().path() != "/" {
        *response.status_mut() = StatusCode::NOT_FOUND;
    } else {
        *response.body_mut() = page.clone();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    response
}

/// The chat's server: the service at [`chat::PREFIX`], the page and the metrics, the
/// `X-Node` header.
pub fn server(args: &chat::Args, node: &str) -> Server {
    let hub = args.hub();
    let config = Config {
        shutdown_code: chat::SHUTDOWN_CODE,
        shutdown_reason: chat::SHUTDOWN_REASON.to_owned(),
        ..Config::default()
    };
    let page = Bytes::from(args.page());
    let script = args.script().map(Bytes::from);
    let chat_node = node.to_owned();
    let server = Server::with_config(config)
        .service(chat::PREFIX, args.options(), move |session| {
            chat::session(hub.clone(), chat_node.clone(), session)
        })
        .unwrap_or_else(|error| {
            eprintln!("invalid options: {error}");
            std::process::exit(2);
        });
    let handle = server.handle();
    server
        .fallback(move |request| page_or_404(&request, &page, script.as_ref(), &handle))
        .header(
            HeaderName::from_static("x-node"),
            HeaderValue::from_str(node).unwrap_or(HeaderValue::from_static("?")),
        )
}

fn main() {
    chat::log_to_stderr();
    let args = chat::Args::parse();
    let (listener, node) = args.listen();
    let listener = Async::new(listener).unwrap_or_else(|error| {
        eprintln!("cannot listen: {error}");
        std::process::exit(1);
    });
    let server = server(&args, &node);

    let handle = server.handle();
    let stop = async move {
        match async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int]) {
            Ok(mut signals) => {
                signals.next().await;
            }
            Err(error) => {
                eprintln!("no signal handling ({error}): stop with SIGKILL");
                future::pending::<()>().await;
            }
        }
        println!("node {node}: shutting down");
        // Every session gets the close frame; `serve` returns once they are done.
        handle.shutdown();
        future::pending().await
    };
    if let Err(error) = async_io::block_on(future::or(server.serve(listener), stop)) {
        eprintln!("server failed: {error}");
        std::process::exit(1);
    }
}
