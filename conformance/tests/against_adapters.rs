//! Every conformance check against both adapters, in-process on ephemeral loopback ports,
//! with the protocol suite's four services (the shared test kit's) and short delays; for
//! sockjs-tokio also mounted in axum with `nest_service`.

mod support;

use std::net::SocketAddr;

use sockjs_core::driver::Config;
use support::{
    ADAPTERS, DISCONNECT, HEARTBEAT, UNPROBED_ABORT_ROUNDS, start_services, suite, suite_base,
};

fn suite_config(addr: SocketAddr) -> conformance::Config {
    conformance::Config::new(format!("http://{addr}"))
        .heartbeat(HEARTBEAT)
        .disconnect(DISCONNECT)
}

fn check(config: conformance::Config) {
    let report = conformance::run(&config);
    println!("{}", report.summary());
    report.assert_success();
}

#[test]
fn every_conformance_check_passes_against_both_adapters() {
    for adapter in ADAPTERS {
        println!("{adapter:?}");
        let target = start_services(adapter, Config::default(), suite(&suite_base()));
        check(suite_config(target.addr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_check_passes_against_sockjs_tokio_in_axum() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut app = axum::Router::new();
    for mut mount in suite(&suite_base()) {
        // axum strips the mount path; the `axum` feature reads its ConnectInfo and
        // OriginalUri.
        mount.options.prefix.clear();
        let handler = mount.handler;
        // Under a server whose sockets it cannot see: the default abort grace, and
        // `UNPROBED_ABORT_ROUNDS` below.
        let service = sockjs_tokio::SockJs::builder(mount.options)
            .config(Config::default())
            .build(move |s| handler(s))
            .expect("valid options");
        app = app.nest_service(&mount.prefix, service);
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::task::spawn_blocking(move || {
        check(suite_config(addr).abort_rounds(UNPROBED_ABORT_ROUNDS))
    })
    .await
    .expect("suite ran");
    server.abort();
}
