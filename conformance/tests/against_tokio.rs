//! Runs every conformance check against sockjs-tokio, in-process on ephemeral loopback
//! ports: once through its standalone `serve`, once mounted in axum with `nest_service`.

use std::net::SocketAddr;
use std::time::Duration;

use sockjs_tokio::{Options, Routes, Session, SockJs};

const HEARTBEAT: Duration = Duration::from_millis(1000);
const DISCONNECT: Duration = Duration::from_millis(1500);

async fn echo(mut session: Session) {
    while let Some(message) = session.recv().await {
        let _ = session.send(&message);
    }
}

async fn close(session: Session) {
    let _ = session.close(3000, "Go away!");
}

fn services() -> Vec<(&'static str, SockJs)> {
    let base = Options {
        hixie76: true,
        heartbeat_delay: HEARTBEAT,
        disconnect_delay: DISCONNECT,
        ..Options::default()
    };
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

/// What the axum integration needs: the peer address and the unstripped URI.
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

fn check(addr: SocketAddr) {
    let report = conformance::run(
        &conformance::Config::new(format!("http://{addr}"))
            .heartbeat(HEARTBEAT)
            .disconnect(DISCONNECT),
    );
    println!("{}", report.summary());
    report.assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_check_passes_against_sockjs_tokio_serve() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut routes = Routes::new();
    for (prefix, service) in services() {
        routes = routes.mount(prefix, service);
    }
    let server = tokio::spawn(sockjs_tokio::serve(listener, routes).into_future());
    tokio::task::spawn_blocking(move || check(addr))
        .await
        .expect("suite ran");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_check_passes_against_sockjs_tokio_in_axum() {
    use tower::ServiceExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut app = axum::Router::new();
    for (prefix, service) in services() {
        app = app.nest_service(prefix, service.map_request(from_axum));
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::task::spawn_blocking(move || check(addr))
        .await
        .expect("suite ran");
    server.abort();
}
