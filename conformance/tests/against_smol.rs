//! Runs every conformance check against sockjs-smol, started in-process on an ephemeral
//! loopback port with the suite's four services and short delays.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use async_io::Async;
use sockjs_smol::{Options, Server, Session};

const HEARTBEAT: Duration = Duration::from_millis(1000);
const DISCONNECT: Duration = Duration::from_millis(1500);

async fn echo(mut session: Session) {
    while let Some(message) = session.recv().await {
        let _ = session.send(&message);
    }
}

async fn close(session: Session) {
    session.close(3000, "Go away!");
}

fn start() -> (SocketAddr, sockjs_smol::ServerHandle) {
    let base = Options {
        hixie76: true,
        heartbeat_delay: HEARTBEAT,
        disconnect_delay: DISCONNECT,
        ..Options::default()
    };
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
        })
        .expect("valid options");
    let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
    let addr = listener.get_ref().local_addr().expect("addr");
    let handle = server.handle();
    std::thread::spawn(move || async_io::block_on(server.serve(listener)));
    (addr, handle)
}

#[test]
fn every_conformance_check_passes_against_sockjs_smol() {
    let (addr, handle) = start();
    let report = conformance::run(
        &conformance::Config::new(format!("http://{addr}"))
            .heartbeat(HEARTBEAT)
            .disconnect(DISCONNECT),
    );
    handle.shutdown();
    println!("{}", report.summary());
    report.assert_success();
}
