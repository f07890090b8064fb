//! HTTPS and WSS on both adapters (`Config::tls`, cargo feature `tls`): every conformance
//! check over TLS with a throwaway CA, a WebSocket echo over wss, and a client that never
//! finishes its handshake.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use conformance::tls::ClientStream;
use sockjs_core::driver::Config;
use support::{
    ADAPTERS, Adapter, DISCONNECT, HEARTBEAT, Target, TestCerts, UNPROBED_ABORT_ROUNDS,
    start_services, start_services_on, suite, suite_base, wait_for,
};

fn start_tls(adapter: Adapter, certs: &TestCerts, config: Config) -> Target {
    let config = Config {
        tls: Some(certs.server()),
        ..config
    };
    start_services(adapter, config, suite(&suite_base()))
}

/// A TLS connection to the target, trusting the test CA.
fn connect(target: &Target, certs: &TestCerts) -> ClientStream {
    connect_with(target, &certs.client)
}

/// A TLS connection to the target with these client settings.
fn connect_with(target: &Target, client: &std::sync::Arc<rustls::ClientConfig>) -> ClientStream {
    let tcp = TcpStream::connect(target.addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    ClientStream::tls(tcp, &target.host(), client).expect("TLS handshake")
}

#[test]
fn every_conformance_check_passes_over_tls_against_both_adapters() {
    let certs = TestCerts::new();
    for adapter in ADAPTERS {
        println!("{adapter:?}");
        // TLS streams cannot be probed: the default abort grace, and fewer abort rounds.
        let target = start_tls(adapter, &certs, Config::default());
        let report = conformance::run(
            &conformance::Config::new(format!("https://{}", target.addr))
                .heartbeat(HEARTBEAT)
                .disconnect(DISCONNECT)
                .abort_rounds(UNPROBED_ABORT_ROUNDS)
                .tls(certs.client.clone()),
        );
        println!("{}", report.summary());
        report.assert_success();
    }
}

#[test]
fn websockets_echo_over_wss_on_both_adapters() {
    let certs = TestCerts::new();
    for adapter in ADAPTERS {
        let target = start_tls(adapter, &certs, Config::default());
        // The raw WebSocket endpoint: big messages cross many TLS records each way.
        let url = format!("wss://{}/echo/websocket", target.addr);
        let (mut ws, _) =
            tungstenite::client(url.as_str(), connect(&target, &certs)).expect("upgrade");
        let big: String = (0..200_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        for message in ["hello", "ünïcödé ☃", big.as_str()] {
            ws.send(tungstenite::Message::text(message)).expect("send");
            match ws.read().expect("echo") {
                tungstenite::Message::Text(text) => {
                    assert_eq!(text.as_str(), message, "{adapter:?}")
                }
                other => panic!("{adapter:?}: {other:?}"),
            }
        }
        ws.close(None).expect("close");
        loop {
            match ws.read() {
                Ok(tungstenite::Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // A SockJS WebSocket session: the open frame, an echo, the application's close.
        let url = format!("wss://{}/close/000/tls/websocket", target.addr);
        let (mut ws, _) =
            tungstenite::client(url.as_str(), connect(&target, &certs)).expect("upgrade");
        let mut frames = Vec::new();
        while let Ok(message) = ws.read() {
            if let tungstenite::Message::Text(text) = message {
                frames.push(text.as_str().to_owned());
            }
        }
        assert_eq!(frames, ["o", "c[3000,\"Go away!\"]"], "{adapter:?}");
    }
}

#[test]
fn plain_http_on_a_tls_port_and_a_silent_client_are_dropped() {
    let certs = TestCerts::new();
    let timeout = Duration::from_millis(500);
    let config = Config {
        header_read_timeout: timeout,
        ..Config::default()
    };
    for adapter in ADAPTERS {
        let target = start_tls(adapter, &certs, config.clone());
        // Plain HTTP is not a TLS handshake: the connection ends without an HTTP answer.
        let mut plain = TcpStream::connect(target.addr).expect("connect");
        plain
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        plain
            .write_all(b"GET /echo/info HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer);
        assert!(!answer.starts_with(b"HTTP/"), "{adapter:?}: {answer:?}");
        // A client that never says hello is dropped after the header read timeout (timed
        // from before the connect: the server's clock starts at its accept, no sooner).
        let started = Instant::now();
        let mut silent = TcpStream::connect(target.addr).expect("connect");
        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let ended = matches!(silent.read(&mut [0u8; 64]), Ok(0) | Err(_));
        let took = started.elapsed();
        assert!(ended, "{adapter:?}");
        assert!(
            took >= timeout - Duration::from_millis(50) && took < Duration::from_secs(4),
            "{adapter:?}: {took:?}"
        );
        // And the server still serves TLS clients.
        let mut conn = conformance::http::Conn::new(connect(&target, &certs), &target.host());
        let response = conn
            .roundtrip(&conformance::http::Request::new("GET", "/echo"))
            .expect("greeting");
        assert_eq!(response.text(), "Welcome to SockJS!\n", "{adapter:?}");
    }
}

/// The TLS handshake and the first request head share one header read timeout, counted
/// from the accept: a client that takes most of it to shake hands cannot then hold its
/// connection for a second timeout before its first request (the same bound on a
/// connection's place as a plain client's). One that asks at once is served.
#[test]
fn the_handshake_and_the_first_head_share_the_header_read_timeout_on_both_adapters() {
    let certs = TestCerts::new();
    let timeout = Duration::from_secs(2);
    let late = Duration::from_secs(1);
    let config = Config {
        header_read_timeout: timeout,
        ..Config::default()
    };
    for adapter in ADAPTERS {
        let target = start_tls(adapter, &certs, config.clone());
        let slow_handshake = || {
            let tcp = TcpStream::connect(target.addr).expect("connect");
            tcp.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            std::thread::sleep(late);
            ClientStream::tls(tcp, &target.host(), &certs.client).expect("TLS handshake")
        };
        // Timed from before the connect: the server's clock starts at its accept, no sooner.
        let started = Instant::now();
        let mut silent = slow_handshake();
        let ended = matches!(silent.read(&mut [0u8; 64]), Ok(0) | Err(_));
        let took = started.elapsed();
        assert!(ended, "{adapter:?}");
        assert!(
            took >= timeout - Duration::from_millis(50) && took < timeout + late * 3 / 4,
            "{adapter:?}: closed {took:?} after the connect (a second timeout after the \
             handshake would be {:?})",
            late + timeout
        );
        let mut conn = conformance::http::Conn::new(slow_handshake(), &target.host());
        let response = conn
            .roundtrip(&conformance::http::Request::new("GET", "/echo"))
            .expect("greeting");
        assert_eq!(response.text(), "Welcome to SockJS!\n", "{adapter:?}");
    }
}

/// sockjs-smol's fallback sees `Tls` on a request that came over TLS (a fallback that
/// redirects to https or sets `Secure` cookies needs to know), as the services' requests
/// do; over plain TCP it does not.
#[test]
fn the_fallback_knows_a_request_came_over_tls() {
    let certs = TestCerts::new();
    for tls in [true, false] {
        let config = Config {
            tls: tls.then(|| certs.server()),
            ..Config::default()
        };
        let server = sockjs_smol::Server::with_config(config)
            .threads(1)
            .fallback(|request| {
                let tls = request.extensions().get::<sockjs_core::Tls>().is_some();
                http::Response::new(bytes::Bytes::from(format!("tls: {tls}")))
            });
        let listener =
            async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
        let addr = listener.get_ref().local_addr().expect("addr");
        let handle = server.handle();
        std::thread::spawn(move || async_io::block_on(server.serve(listener)));
        let tcp = TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let stream = if tls {
            ClientStream::tls(tcp, &addr.to_string(), &certs.client).expect("TLS handshake")
        } else {
            ClientStream::Plain(tcp)
        };
        let mut conn = conformance::http::Conn::new(stream, &addr.to_string());
        let response = conn
            .roundtrip(&conformance::http::Request::new("GET", "/page"))
            .expect("answer");
        assert_eq!(response.text(), format!("tls: {tls}"));
        handle.shutdown();
    }
}

/// RFC 7301 §3.2: the server speaks the protocol it selects. Settings made for another
/// server often offer `h2` first; a browser offering both would pick HTTP/2 and read
/// HTTP/1.1 bytes. Both servers offer `http/1.1` only, whatever the settings list, and take
/// no 0-RTT early data (RFC 8446 §8: replayable; and never read by the server's stream).
#[test]
fn settings_that_offer_h2_still_negotiate_http_1_1_on_both_adapters() {
    let certs = TestCerts::new();
    let mut server = sockjs_core::driver::tls::ServerConfig::clone(&certs.server());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    server.max_early_data_size = 16 * 1024;
    let only = sockjs_core::driver::tls::http1_only(std::sync::Arc::new(server.clone()));
    assert_eq!(only.alpn_protocols, [b"http/1.1".to_vec()]);
    assert_eq!(only.max_early_data_size, 0);
    assert!(std::sync::Arc::ptr_eq(
        &only,
        &sockjs_core::driver::tls::http1_only(only.clone())
    ));
    let mut client = rustls::ClientConfig::clone(&certs.client);
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let client = std::sync::Arc::new(client);
    for adapter in ADAPTERS {
        let config = Config {
            tls: Some(std::sync::Arc::new(server.clone())),
            ..Config::default()
        };
        let target = start_services(adapter, config, suite(&suite_base()));
        let stream = connect_with(&target, &client);
        let ClientStream::Tls(tls) = &stream else {
            unreachable!("a TLS stream")
        };
        assert_eq!(
            tls.conn.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "{adapter:?}"
        );
        let mut conn = conformance::http::Conn::new(stream, &target.host());
        let response = conn
            .roundtrip(&conformance::http::Request::new("GET", "/echo"))
            .expect("greeting");
        assert_eq!(response.text(), "Welcome to SockJS!\n", "{adapter:?}");
    }
}

/// A connection still in its TLS handshake carries no request: graceful shutdown lets it
/// go when it lets an idle connection go, not after the handshake's timeout (here the
/// default 10 s, as long as the shutdown's own bound).
#[test]
fn a_connection_in_its_tls_handshake_does_not_hold_the_shutdown() {
    let certs = TestCerts::new();
    for adapter in ADAPTERS {
        let target = start_tls(adapter, &certs, Config::default());
        let mut silent = TcpStream::connect(target.addr).expect("connect");
        silent
            .set_read_timeout(Some(Duration::from_secs(8)))
            .expect("timeout");
        // The server has the connection (and a TLS client still gets served).
        let mut conn = conformance::http::Conn::new(connect(&target, &certs), &target.host());
        let response = conn
            .roundtrip(&conformance::http::Request::new("GET", "/echo"))
            .expect("greeting");
        assert_eq!(response.text(), "Welcome to SockJS!\n", "{adapter:?}");
        drop(conn);
        let started = Instant::now();
        target.shutdown();
        assert!(
            wait_for(Duration::from_secs(5), || target.has_ended()),
            "{adapter:?}: still serving after {:?}",
            started.elapsed()
        );
        assert!(
            matches!(silent.read(&mut [0u8; 64]), Ok(0) | Err(_)),
            "{adapter:?}"
        );
    }
}

/// RFC 6455 §7.1.1 over wss: a client that sends a lot, then its close, and reads late
/// still gets the server's close frame. A TLS stream takes a write it cannot send yet and
/// keeps it; the server must not end the connection (or linger without writing) until its
/// close is really out, as it does over plain TCP.
#[test]
fn a_wss_close_reaches_a_client_that_reads_late_on_both_adapters() {
    use socket2::{Domain, Socket, Type};
    let certs = TestCerts::new();
    let big: String = (0..100_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    for adapter in ADAPTERS {
        // Small socket buffers both ways (the accepted sockets inherit the listener's), so
        // the echoes fill them and the server's writes block while the client is away.
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        listener.set_send_buffer_size(4096).expect("sndbuf");
        listener
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        listener.listen(16).expect("listen");
        let config = Config {
            tls: Some(certs.server()),
            ..Config::default()
        };
        let target = start_services_on(adapter, config, suite(&suite_base()), listener.into());
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        client.set_recv_buffer_size(4096).expect("rcvbuf");
        client.connect(&target.addr.into()).expect("connect");
        let tcp: TcpStream = client.into();
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let stream = ClientStream::tls(tcp, &target.host(), &certs.client).expect("TLS handshake");
        let url = format!("wss://{}/echo/websocket", target.addr);
        let (mut ws, _) = tungstenite::client(url.as_str(), stream).expect("upgrade");
        for _ in 0..5 {
            ws.send(tungstenite::Message::text(big.as_str()))
                .expect("send");
        }
        ws.close(None).expect("close");
        // Away long enough for the server to read the close and answer it.
        std::thread::sleep(Duration::from_millis(500));
        let ending = loop {
            match ws.read() {
                Ok(tungstenite::Message::Text(text)) => {
                    assert_eq!(text.len(), big.len(), "{adapter:?}")
                }
                Ok(tungstenite::Message::Close(frame)) => break Ok(frame),
                Ok(_) => {}
                Err(error) => break Err(error),
            }
        };
        assert!(
            matches!(&ending, Ok(Some(frame)) if u16::from(frame.code) == 1000),
            "{adapter:?}: {ending:?}"
        );
    }
}
