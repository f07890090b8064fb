//! A client whose connection is cut silently (no FIN, no RST: a cut cable, a NAT that
//! forgot the flow) is noticed, and its session freed, within a documented bound
//! (DEPLOYMENT.md, "Clients that vanish"), on both adapters:
//!
//! - a WebSocket, through the bad link's cut (`conformance::badlink`), with
//!   `Options::websocket_ping`: freed within `interval + timeout` (plus slack);
//! - an xhr-streaming receiver, which sends nothing upstream, over plain TCP and over TLS
//!   (whose TCP socket the server tunes the same way), with real packet loss:
//!   `Config::tcp_user_timeout` makes the kernel give the connection up once the next
//!   heartbeat goes unacknowledged, so the session is freed within `heartbeat_delay +
//!   tcp_user_timeout + heartbeat_delay` (the receiver's abort closes it at once, by the
//!   default `AbortPolicy`). A loopback proxy cannot show
//!   that (its kernel acknowledges everything), so this test drops every packet on the
//!   loopback interface with `tc`, and only runs in a private network namespace (see
//!   [`loss_namespace`]): `.ci/run` runs it under `unshare --net` with
//!   `SOCKJS_NETNS_LOSS=1`; elsewhere it says it is skipped.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use conformance::badlink::{BadLink, LinkConfig};
use conformance::tls::ClientStream;
use sockjs_core::driver::{Config, Session};
use sockjs_core::{Options, PingOptions};
use support::{ADAPTERS, Adapter, Mount, Target, TestCerts, handler, start_services, within};

/// Scheduling slack on top of each bound (two shared cores, debug builds).
const SLACK: Duration = Duration::from_millis(1500);

fn echo(options: Options, config: Config, adapter: Adapter) -> Target {
    let echo = handler(|mut session: Session| async move {
        while let Some(message) = session.recv().await {
            if session.send(message).await.is_err() {
                break;
            }
        }
    });
    start_services(adapter, config, vec![Mount::new("/echo", options, echo)])
}

/// How long until the server holds no session, polling; `None` past `limit`.
fn freed_within(target: &Target, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if target.session_count() == 0 {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn a_silently_cut_websocket_is_closed_by_the_ping() {
    for adapter in ADAPTERS {
        within(Duration::from_secs(30), move || {
            let ping = PingOptions {
                interval: Duration::from_millis(600),
                timeout: Duration::from_millis(600),
            };
            let options = Options {
                websocket_ping: Some(ping),
                disconnect_delay: Duration::from_millis(500),
                ..Options::default()
            };
            let target = echo(options, Config::default(), adapter);
            // The link's tasks run on the runtime's worker while this thread is the client.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let link_config = LinkConfig {
                latency: Duration::from_millis(5),
                jitter: Duration::from_millis(5),
                ..LinkConfig::default()
            };
            let link = runtime
                .block_on(BadLink::start(
                    "127.0.0.1:0".parse().unwrap(),
                    target.addr,
                    link_config,
                ))
                .unwrap();
            let link_addr = link.local_addr();

            let stream = TcpStream::connect(link_addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let url = format!("ws://{link_addr}/echo/000/cutws/websocket");
            let (mut ws, _) = tungstenite::client(url.as_str(), stream).unwrap();
            assert_eq!(support::ws_text(&mut ws).as_deref(), Some("o"));
            ws.send(tungstenite::Message::text(r#"["before the cut"]"#))
                .unwrap();
            assert_eq!(
                support::ws_text(&mut ws).as_deref(),
                Some(r#"a["before the cut"]"#)
            );
            // Answered pings keep a live link open past interval + timeout.
            let idle_until = Instant::now() + ping.interval * 2 + ping.timeout;
            ws.get_ref()
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            while Instant::now() < idle_until {
                let _ = ws.read(); // answers pings; times out otherwise
            }
            assert_eq!(
                target.session_count(),
                1,
                "{adapter:?}: a live link was closed"
            );

            // Cut: the client's socket stays open and silent; so does the server's.
            link.cut_all();
            let bound = ping.interval + ping.timeout + SLACK;
            let took = freed_within(&target, bound + Duration::from_secs(5));
            assert_eq!(link.cut_count(), 1);
            let took = took.unwrap_or_else(|| panic!("{adapter:?}: session not freed"));
            eprintln!("{adapter:?}: silently cut WebSocket freed after {took:?} (bound {bound:?})");
            assert!(
                took <= bound,
                "{adapter:?}: freed after {took:?}, bound {bound:?}"
            );
            drop(ws);
            drop(link);
            runtime.shutdown_background();
        });
    }
}

/// Adds (and on drop removes) a qdisc on `lo` that drops every packet. Refuses to run
/// outside a network namespace of its own: in the host's it would cut every loopback
/// connection of the machine.
struct LossOnLo;

impl LossOnLo {
    fn start() -> LossOnLo {
        tc(&["qdisc", "add", "dev", "lo", "root", "pfifo", "limit", "0"]);
        LossOnLo
    }
}

impl Drop for LossOnLo {
    fn drop(&mut self) {
        tc(&["qdisc", "del", "dev", "lo", "root"]);
    }
}

fn tc(args: &[&str]) {
    let status = Command::new("tc").args(args).status();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "tc {args:?}: {status:?}"
    );
}

/// Held by each test that drops packets for its whole run: `lo`'s loss is shared by every
/// connection of the namespace, so those tests take turns.
static LOSS_TURN: Mutex<()> = Mutex::new(());

/// Waits for the turn to stage packet loss (see [`LOSS_TURN`]).
fn loss_turn() -> MutexGuard<'static, ()> {
    LOSS_TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// True when packet loss may be staged here: `SOCKJS_NETNS_LOSS=1`, in a network namespace
/// made for it: `lo` is its only interface (`/proc/self/net/dev`, which follows the
/// namespace), and it is not init's when that can be read.
fn loss_namespace() -> bool {
    if std::env::var("SOCKJS_NETNS_LOSS").as_deref() != Ok("1") {
        eprintln!("skipped: run under `unshare --net` with SOCKJS_NETNS_LOSS=1 (as .ci/run does)");
        return false;
    }
    let refuse =
        "SOCKJS_NETNS_LOSS=1 outside a private network namespace: refusing to drop packets on lo";
    let dev = std::fs::read_to_string("/proc/self/net/dev").expect("/proc/self/net/dev");
    let interfaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{refuse}");
    if let (Ok(own), Ok(init)) = (
        std::fs::read_link("/proc/self/ns/net"),
        std::fs::read_link("/proc/1/ns/net"),
    ) {
        assert_ne!(own, init, "{refuse}");
    }
    true
}

/// A TCP connection to the target whose reads give up after five seconds.
fn connect(target: &Target) -> TcpStream {
    let stream = TcpStream::connect(target.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Opens an xhr-streaming receiver and reads up to its open frame.
fn streaming_receiver(target: &Target, session: &str) -> TcpStream {
    open_stream(connect(target), target, session)
}

/// Opens an xhr-streaming receiver on `stream` (plain or TLS) and reads up to its open frame.
fn open_stream<S: Read + Write>(mut stream: S, target: &Target, session: &str) -> S {
    write!(
        stream,
        "POST /echo/000/{session}/xhr_streaming HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
        target.host()
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(3).any(|w| w == b"o\n\r" || w == b"\no\n") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended before its open frame");
        seen.extend_from_slice(&buf[..n]);
    }
    stream
}

/// The streaming tests' timing: heartbeats and the disconnect delay of 500 ms, a TCP user
/// timeout of 1 s, and the bound on freeing a session behind a dead link that follows.
struct CutTiming {
    options: Options,
    user_timeout: Duration,
    bound: Duration,
}

impl CutTiming {
    fn new() -> CutTiming {
        let heartbeat = Duration::from_millis(500);
        let disconnect = Duration::from_millis(500);
        let user_timeout = Duration::from_secs(1);
        CutTiming {
            options: Options {
                heartbeat_delay: Some(heartbeat),
                disconnect_delay: disconnect,
                ..Options::default()
            },
            user_timeout,
            // The abort closes the session at once (`AbortPolicy::CloseSession`): no
            // disconnect delay.
            bound: heartbeat + user_timeout + heartbeat + SLACK,
        }
    }

    /// Drops every packet until the target holds no session, which must be within the
    /// bound.
    fn assert_freed(&self, target: &Target, what: &str) {
        let loss = LossOnLo::start();
        let took = freed_within(target, self.bound + Duration::from_secs(5));
        drop(loss);
        let (adapter, bound) = (target.adapter, self.bound);
        let took = took.unwrap_or_else(|| panic!("{adapter:?}: session not freed"));
        eprintln!("{adapter:?}: {what} behind a dead link freed after {took:?} (bound {bound:?})");
        assert!(
            took <= bound,
            "{adapter:?}: freed after {took:?}, bound {bound:?}"
        );
    }
}

#[test]
fn a_streaming_client_behind_a_dead_link_is_freed_by_tcp_user_timeout() {
    if !loss_namespace() {
        return;
    }
    let _turn = loss_turn();
    for adapter in ADAPTERS {
        within(Duration::from_secs(40), move || {
            let timing = CutTiming::new();
            // Without the option the kernel keeps retransmitting for minutes: the session
            // outlives the bound. That is what the option is for.
            let without = Config {
                tcp_user_timeout: None,
                ..Config::default()
            };
            let target = echo(timing.options.clone(), without, adapter);
            let _client = streaming_receiver(&target, "cutnone");
            let loss = LossOnLo::start();
            assert_eq!(
                freed_within(&target, timing.bound),
                None,
                "{adapter:?}: freed without it"
            );
            drop(loss);
            drop(target);

            let with = Config {
                tcp_user_timeout: Some(timing.user_timeout),
                ..Config::default()
            };
            let target = echo(timing.options.clone(), with, adapter);
            let _client = streaming_receiver(&target, "cutstream");
            timing.assert_freed(&target, "streaming client");
        });
    }
}

/// The same over TLS: the server tunes the TCP socket under the TLS session as it tunes a
/// plain one (`Config::tcp_user_timeout` included), so a dead link under HTTPS is noticed
/// within the same bound.
#[test]
fn a_streaming_client_over_tls_behind_a_dead_link_is_freed_by_tcp_user_timeout() {
    if !loss_namespace() {
        return;
    }
    let _turn = loss_turn();
    let certs = TestCerts::new();
    for adapter in ADAPTERS {
        let (server, client) = (certs.server(), certs.client.clone());
        within(Duration::from_secs(30), move || {
            let timing = CutTiming::new();
            let config = Config {
                tcp_user_timeout: Some(timing.user_timeout),
                tls: Some(server),
                ..Config::default()
            };
            let target = echo(timing.options.clone(), config, adapter);
            let tls = ClientStream::tls(connect(&target), &target.host(), &client).unwrap();
            let _client = open_stream(tls, &target, "cuttls");
            timing.assert_freed(&target, "TLS streaming client");
        });
    }
}
