//! The bad-link proxy (`conformance::badlink`) over loopback sockets: bytes arrive intact
//! and in order through latency, jitter, stalls and slicing; half-closes pass through; a
//! silent cut forwards nothing and closes nothing; a stuck reader pushes back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conformance::badlink::{BadLink, LinkConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(20);

fn lo() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// An upstream that accepts one connection and hands it over.
async fn upstream() -> (SocketAddr, tokio::task::JoinHandle<TcpStream>) {
    let listener = TcpListener::bind(lo()).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move { listener.accept().await.expect("accept").0 });
    (addr, task)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

#[tokio::test]
async fn bytes_arrive_intact_and_in_order_both_ways() {
    tokio::time::timeout(BOUND, async {
        let (addr, accepted) = upstream().await;
        let config = LinkConfig {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(10),
            stall_probability: 0.05,
            stall: Duration::from_millis(50),
            segment_min: 1,
            segment_max: 7,
            seed: 42,
            ..LinkConfig::default()
        };
        let link = BadLink::start(lo(), addr, config).await.expect("start");
        let client = TcpStream::connect(link.local_addr())
            .await
            .expect("connect");
        let server = accepted.await.expect("accepted");
        let (up, down) = (pattern(150_000, 1), pattern(120_000, 7));
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let (up2, down2) = (up.clone(), down.clone());
        let send_up = tokio::spawn(async move {
            cw.write_all(&up2).await.expect("client write");
            cw.shutdown().await.expect("client shutdown");
            cw
        });
        let send_down = tokio::spawn(async move {
            sw.write_all(&down2).await.expect("server write");
            sw.shutdown().await.expect("server shutdown");
            sw
        });
        // Read to the end: the half-close passes through after the last byte.
        let read_up = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut reads = 0usize;
            let mut buf = [0u8; 65536];
            loop {
                let n = sr.read(&mut buf).await.expect("server read");
                if n == 0 {
                    break;
                }
                reads += 1;
                got.extend_from_slice(&buf[..n]);
            }
            (got, reads)
        });
        let mut got_down = Vec::new();
        cr.read_to_end(&mut got_down).await.expect("client read");
        let (got_up, reads) = read_up.await.expect("reader");
        let _ = (send_up.await, send_down.await);
        assert_eq!(got_up.len(), up.len());
        assert!(got_up == up, "client to server bytes differ");
        assert_eq!(got_down.len(), down.len());
        assert!(got_down == down, "server to client bytes differ");
        // Sliced: far more reads than a plain loopback copy would take.
        assert!(reads > 100, "only {reads} reads for {} bytes", up.len());
        assert_eq!(link.accepted(), 1);
        assert_eq!(link.cut_count(), 0);
    })
    .await
    .expect("bounded");
}

/// After a read times out, the socket is still open (no EOF, no reset).
async fn silent(stream: &mut TcpStream, for_: Duration) -> Result<(), String> {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(for_, stream.read(&mut buf)).await {
        Err(_) => Ok(()),
        Ok(Ok(0)) => Err("saw EOF".into()),
        Ok(Ok(n)) => Err(format!("got {n} bytes")),
        Ok(Err(e)) => Err(format!("read error {e}")),
    }
}

#[tokio::test]
async fn a_cut_forwards_nothing_and_closes_nothing() {
    tokio::time::timeout(BOUND, async {
        let (addr, accepted) = upstream().await;
        let config = LinkConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            ..LinkConfig::default()
        };
        let link = BadLink::start(lo(), addr, config).await.expect("start");
        let mut client = TcpStream::connect(link.local_addr())
            .await
            .expect("connect");
        let mut server = accepted.await.expect("accepted");
        // The link works before the cut.
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");

        link.cut_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write_all(b"lost up").await.expect("write after cut");
        server
            .write_all(b"lost down")
            .await
            .expect("write after cut");
        silent(&mut server, Duration::from_millis(700))
            .await
            .expect("server side");
        silent(&mut client, Duration::from_millis(300))
            .await
            .expect("client side");
        // Closing one end does not reach the other either: no FIN is forwarded.
        drop(client);
        silent(&mut server, Duration::from_millis(500))
            .await
            .expect("after client close");
        assert_eq!(link.cut_count(), 1);

        // The proxy stopping is what finally closes its side.
        link.shutdown();
        let mut rest = Vec::new();
        let end = tokio::time::timeout(Duration::from_secs(5), server.read_to_end(&mut rest)).await;
        assert!(end.is_ok(), "proxy stopped, socket still open");
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn scheduled_cuts_follow_the_probability() {
    tokio::time::timeout(BOUND, async {
        let listener = TcpListener::bind(lo()).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = LinkConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            cut_probability: 1.0,
            cut_after: Duration::from_millis(100),
            ..LinkConfig::default()
        };
        let link = BadLink::start(lo(), addr, config).await.expect("start");
        let mut client = TcpStream::connect(link.local_addr())
            .await
            .expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.write_all(b"x").await.expect("write");
        silent(&mut server, Duration::from_millis(400))
            .await
            .expect("cut by schedule");
        assert_eq!(link.cut_count(), 1);
    })
    .await
    .expect("bounded");
}

#[tokio::test]
async fn a_reader_that_stops_pushes_back_on_the_writer() {
    tokio::time::timeout(BOUND, async {
        let (addr, accepted) = upstream().await;
        let config = LinkConfig {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            segment_min: 512,
            segment_max: 4096,
            max_buffered: 16 * 1024,
            ..LinkConfig::default()
        };
        let link = BadLink::start(lo(), addr, config).await.expect("start");
        let client = TcpStream::connect(link.local_addr())
            .await
            .expect("connect");
        let _server = accepted.await.expect("accepted"); // never read
        let (_r, mut w) = client.into_split();
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0usize;
        let started = Instant::now();
        // Kernel buffers on both hops plus 16 KiB in the proxy; far less than 256 MiB.
        while started.elapsed() < Duration::from_secs(2) && written < 256 << 20 {
            match tokio::time::timeout(Duration::from_millis(500), w.write(&chunk)).await {
                Ok(Ok(n)) => written += n,
                Ok(Err(e)) => panic!("write failed: {e}"),
                Err(_) => break,
            }
        }
        assert!(
            written < 64 << 20,
            "{written} bytes went into a link nobody reads"
        );
    })
    .await
    .expect("bounded");
}
