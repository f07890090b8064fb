//! The hostile-input run (`conformance::hostile`) against sockjs-smol and sockjs-tokio,
//! in-process on ephemeral loopback ports, with short request and idle timeouts so the
//! slowloris cases finish quickly.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use async_io::Async;
use conformance::hostile::{HostileConfig, run};

/// The servers' request-read and idle timeouts in these tests.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(400);

fn config(addr: SocketAddr) -> HostileConfig {
    let mut config = HostileConfig::new(format!("http://{addr}"))
        .request_timeout(REQUEST_TIMEOUT)
        .io_timeout(Duration::from_secs(3));
    config.filter = std::env::var("HOSTILE_FILTER").ok();
    config
}

#[test]
fn hostile_input_against_sockjs_smol() {
    let server = sockjs_smol::Server::with_config(sockjs_smol::Config {
        threads: 2,
        shards: 2,
        header_read_timeout: REQUEST_TIMEOUT,
        keep_alive_timeout: REQUEST_TIMEOUT,
        ..Default::default()
    })
    .service(
        "/echo",
        sockjs_smol::Options::default(),
        |mut session| async move {
            while let Some(message) = session.recv().await {
                let _ = session.send(&message);
            }
        },
    )
    .expect("valid options");
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
    let addr = listener.get_ref().local_addr().expect("addr");
    let handle = server.handle();
    let thread = std::thread::spawn(move || async_io::block_on(server.serve(listener)));
    let report = run(&config(addr));
    println!("{}", report.table());
    handle.shutdown();
    report.assert_success();
    thread.join().expect("serve thread").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_against_sockjs_tokio() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let echo = sockjs_tokio::SockJs::builder(sockjs_tokio::Options::default())
        .request_body_timeout(REQUEST_TIMEOUT)
        .build(|mut session| async move {
            while let Some(message) = session.recv().await {
                let _ = session.send(message);
            }
        })
        .expect("valid options");
    let server = tokio::spawn(
        sockjs_tokio::serve(listener, sockjs_tokio::Routes::new().mount("/echo", echo))
            .header_read_timeout(REQUEST_TIMEOUT)
            .into_future(),
    );
    let report = tokio::task::spawn_blocking(move || run(&config(addr)))
        .await
        .expect("run");
    println!("{}", report.table());
    server.abort();
    report.assert_success();
}
