//! A bad link: a loopback TCP proxy that forwards both ways through a poor network.
//!
//! Each accepted connection is forwarded to one upstream address, and each direction of it
//! independently suffers:
//!
//! - **latency with jitter**: every chunk read is delivered `latency + U[0, jitter]` after
//!   it was read, never before an earlier chunk of the same direction (TCP keeps order, so
//!   jitter shows up as bunching, never as reordering);
//! - **slicing**: chunks go out in segments of `segment_min..=segment_max` bytes, one write
//!   each on a `TCP_NODELAY` socket, so the peer really reads tiny segments;
//! - **stalls**: with probability `stall_probability` per chunk, delivery pauses for
//!   `stall` before that chunk;
//! - **a silent cut**: on [`BadLink::cut_all`], or per connection with probability
//!   `cut_probability` once `cut_after` has passed, forwarding stops in both directions and
//!   both sockets stay open: no FIN, no RST, so neither end learns anything from the link.
//!   A cut connection's sockets are closed only when the proxy itself stops.
//!
//! Randomness comes from a seeded generator, one stream per connection (by accept order)
//! and direction, so a run is repeatable. Memory is bounded: each direction holds at most
//! `max_buffered` bytes in flight and stops reading when that is reached, which pushes back
//! on the sender through TCP's own flow control.
//!
//! Both the listen address and the upstream must be loopback addresses: this is a test tool
//! and refuses to touch anything else.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use conformance::badlink::{BadLink, LinkConfig};
//! let link = BadLink::start(
//!     "127.0.0.1:0".parse().unwrap(),
//!     "127.0.0.1:8081".parse().unwrap(),
//!     LinkConfig::default(),
//! )
//! .await?;
//! println!("bad link on {}", link.local_addr());
//! link.cut_all(); // every current connection goes silent
//! # Ok(())
//! # }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How bad the link is. [`Default`] is a mild link with no stalls and no cuts.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Fixed one-way delay added to every chunk.
    pub latency: Duration,
    /// Extra one-way delay, uniform in `0..=jitter`, drawn per chunk.
    pub jitter: Duration,
    /// Smallest segment written (at least 1).
    pub segment_min: usize,
    /// Largest segment written (at least `segment_min`).
    pub segment_max: usize,
    /// Probability, per chunk read, of pausing delivery for [`LinkConfig::stall`].
    pub stall_probability: f64,
    /// How long a stall lasts.
    pub stall: Duration,
    /// Probability, per connection, of being cut silently once [`LinkConfig::cut_after`]
    /// has passed since it was accepted.
    pub cut_probability: f64,
    /// When a connection picked for a cut is cut.
    pub cut_after: Duration,
    /// Seed of the link's random choices.
    pub seed: u64,
    /// Most bytes in flight per direction of a connection (read, not yet written).
    pub max_buffered: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(30),
            segment_min: 1,
            segment_max: 7,
            stall_probability: 0.0,
            stall: Duration::from_millis(300),
            cut_probability: 0.0,
            cut_after: Duration::from_secs(1),
            seed: 1,
            max_buffered: 64 * 1024,
        }
    }
}

/// Size of one read; a direction holds at most `max_buffered / READ_CHUNK` chunks.
const READ_CHUNK: usize = 4096;

/// A running bad link. Dropping it (or [`BadLink::shutdown`]) stops it: the listener and
/// every connection, cut or not, are closed.
pub struct BadLink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

struct Shared {
    /// The cut switch of every connection still open.
    cuts: Mutex<Vec<watch::Sender<bool>>>,
    accepted: AtomicU64,
    cut: AtomicU64,
}

/// Errors unless `addr` is a loopback address.
pub fn require_loopback(addr: SocketAddr, what: &str) -> io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} {addr} is not a loopback address: the bad link is loopback only"),
        ))
    }
}

impl BadLink {
    /// Listens on `listen` and forwards each connection to `upstream`; both must be
    /// loopback addresses.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        config: LinkConfig,
    ) -> io::Result<BadLink> {
        require_loopback(listen, "listen address")?;
        require_loopback(upstream, "upstream")?;
        if config.segment_min == 0 || config.segment_max < config.segment_min {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "segment sizes must satisfy 1 <= min <= max",
            ));
        }
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cuts: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let config = Arc::new(config);
        tokio::spawn(accept_loop(
            listener,
            upstream,
            config,
            shared.clone(),
            stop_rx,
        ));
        Ok(BadLink { addr, shared, stop })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cuts every open connection silently: nothing more is forwarded either way, and
    /// both sockets of each stay open until the proxy stops.
    pub fn cut_all(&self) {
        let cuts = self.shared.cuts.lock().unwrap_or_else(|e| e.into_inner());
        for cut in cuts.iter() {
            cut.send_replace(true);
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections cut so far (by [`BadLink::cut_all`] or by the schedule).
    pub fn cut_count(&self) -> u64 {
        self.shared.cut.load(Ordering::Relaxed)
    }

    /// Stops listening and closes every connection.
    pub fn shutdown(self) {}
}

impl Drop for BadLink {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    config: Arc<LinkConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((client, _)) = accepted else {
            // Out of descriptors, usually: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let n = shared.accepted.fetch_add(1, Ordering::Relaxed);
        let (cut_tx, cut_rx) = watch::channel(false);
        {
            let mut cuts = shared.cuts.lock().unwrap_or_else(|e| e.into_inner());
            cuts.retain(|c| !c.is_closed());
            cuts.push(cut_tx.clone());
        }
        let mut rng = Rng::new(config.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        if rng.chance(config.cut_probability) {
            let after = config.cut_after;
            let cut_tx = cut_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                cut_tx.send_replace(true);
            });
        }
        let (config, shared, stop) = (config.clone(), shared.clone(), stop.clone());
        tokio::spawn(async move {
            let _ = connection(client, upstream, &config, rng, &shared, cut_rx, stop).await;
            drop(cut_tx);
        });
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    config: &LinkConfig,
    mut rng: Rng,
    shared: &Shared,
    cut: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let server = tokio::select! {
        s = TcpStream::connect(upstream) => s?,
        _ = stop.wait_for(|s| *s) => return Ok(()),
    };
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let up = Direction::new(config, Rng::new(rng.next()));
    let down = Direction::new(config, Rng::new(rng.next()));
    let forward = async {
        tokio::join!(
            up.run(client_r, server_w, cut.clone()),
            down.run(server_r, client_w, cut.clone())
        )
    };
    let held = tokio::select! {
        (a, b) = forward => (a, b),
        _ = stop.wait_for(|s| *s) => return Ok(()),
    };
    // A cut direction hands its halves back: hold them, open and silent, until the proxy
    // stops.
    if held.0.is_some() || held.1.is_some() {
        shared.cut.fetch_add(1, Ordering::Relaxed);
        let _ = stop.wait_for(|s| *s).await;
    }
    Ok(())
}

/// One direction of a connection: a reader that stamps chunks with their delivery time,
/// and a writer that delivers them sliced.
struct Direction<'a> {
    config: &'a LinkConfig,
    rng: Rng,
}

/// What the reader hands the writer: data with its delivery time, or the end of input.
enum Chunk {
    Data(Instant, Vec<u8>),
    Eof,
}

/// The halves of a cut direction, kept open.
type Held = (OwnedReadHalf, OwnedWriteHalf);

impl<'a> Direction<'a> {
    fn new(config: &'a LinkConfig, rng: Rng) -> Self {
        Direction { config, rng }
    }

    /// Forwards until end of input or an error (then returns `None`, halves dropped, so
    /// the far side sees the close), or until the cut (then returns the halves, open).
    async fn run(
        mut self,
        mut from: OwnedReadHalf,
        mut to: OwnedWriteHalf,
        mut cut: watch::Receiver<bool>,
    ) -> Option<Held> {
        let slots = (self.config.max_buffered / READ_CHUNK).max(1);
        let (tx, rx) = mpsc::channel::<Chunk>(slots);
        let config = self.config;
        let mut writer_rng = Rng::new(self.rng.next());
        let mut reader_cut = cut.clone();
        let reader = async {
            // Owned here, so a reader that stops lets the writer see the end.
            let tx = tx;
            let mut last = Instant::now();
            loop {
                let mut buf = vec![0u8; READ_CHUNK];
                // Waiting for a free slot before reading is the backpressure: a full
                // direction leaves the bytes in the kernel's buffers.
                let permit = tokio::select! {
                    p = tx.reserve() => p.ok()?,
                    _ = reader_cut.wait_for(|c| *c) => return Some(()),
                };
                let n = tokio::select! {
                    r = from.read(&mut buf) => r.unwrap_or(0),
                    _ = reader_cut.wait_for(|c| *c) => return Some(()),
                };
                if n == 0 {
                    permit.send(Chunk::Eof);
                    return None;
                }
                buf.truncate(n);
                let mut at = Instant::now() + config.latency + self.rng.upto(config.jitter);
                if self.rng.chance(config.stall_probability) {
                    at += config.stall;
                }
                at = at.max(last);
                last = at;
                permit.send(Chunk::Data(at, buf));
            }
        };
        let writer = async {
            // Owned here, so a writer that fails unblocks a reader waiting for a slot.
            let mut rx = rx;
            loop {
                let chunk = tokio::select! {
                    c = rx.recv() => c,
                    _ = cut.wait_for(|c| *c) => return Some(()),
                };
                match chunk {
                    None => return None,
                    Some(Chunk::Eof) => {
                        let _ = to.shutdown().await;
                        return None;
                    }
                    Some(Chunk::Data(at, data)) => {
                        tokio::select! {
                            _ = tokio::time::sleep_until(at) => {}
                            _ = cut.wait_for(|c| *c) => return Some(()),
                        }
                        let mut rest = &data[..];
                        while !rest.is_empty() {
                            let span = config.segment_max - config.segment_min;
                            let len =
                                (config.segment_min + writer_rng.below(span + 1)).min(rest.len());
                            let write = tokio::select! {
                                w = to.write_all(&rest[..len]) => w,
                                _ = cut.wait_for(|c| *c) => return Some(()),
                            };
                            if write.is_err() {
                                return None;
                            }
                            rest = &rest[len..];
                        }
                    }
                }
            }
        };
        let (r, w) = tokio::join!(reader, writer);
        // Either side seeing the cut means the whole connection is cut: the other side
        // sees it through the same switch.
        if r.is_some() || w.is_some() || *cut.borrow() {
            Some((from, to))
        } else {
            None
        }
    }
}

/// SplitMix64: small, seedable, good enough for choosing delays and sizes.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `0..=max`, at microsecond resolution.
    fn upto(&mut self, max: Duration) -> Duration {
        let us = max.as_micros() as u64;
        if us == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(self.next() % (us + 1))
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Usage of the `badlink` binary.
pub const USAGE: &str = "\
badlink: a loopback TCP proxy that forwards through a bad link

usage: badlink --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [options]

options (defaults in brackets):
  --latency-ms N          one-way delay per chunk [20]
  --jitter-ms N           extra one-way delay, uniform in 0..=N, per chunk [30]
  --segment MIN-MAX       bytes per written segment [1-7]
  --stall-probability P   chance per chunk of a stall [0]
  --stall-ms N            length of a stall [300]
  --cut-probability P     chance per connection of a silent cut [0]
  --cut-after-ms N        when a connection picked for a cut is cut [1000]
  --seed N                seed of every random choice [1]
  --max-buffered BYTES    most bytes in flight per direction [65536]
  --exit-after SECS       stop by itself after this long [none]

Prints `listening on ADDR` once it listens. Reading the line `cut` on standard input cuts
every open connection silently (no FIN, no RST; the sockets stay open).
Both addresses must be loopback addresses.
";

/// The `badlink` binary's command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where to forward to.
    pub upstream: SocketAddr,
    /// The link.
    pub config: LinkConfig,
    /// Stop by itself after this long.
    pub exit_after: Option<Duration>,
}

/// Parses the `badlink` binary's arguments (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let mut listen = None;
    let mut upstream = None;
    let mut config = LinkConfig::default();
    let mut exit_after = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} wants a value"));
        let ms = |v: String| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("{v}: {e}"))
        };
        let prob = |v: String| match v.parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
            _ => Err(format!("{v}: not a probability in 0..=1")),
        };
        let addr = |v: String| v.parse::<SocketAddr>().map_err(|e| format!("{v}: {e}"));
        match a.as_str() {
            "--listen" => listen = Some(addr(val()?)?),
            "--upstream" => upstream = Some(addr(val()?)?),
            "--latency-ms" => config.latency = ms(val()?)?,
            "--jitter-ms" => config.jitter = ms(val()?)?,
            "--stall-ms" => config.stall = ms(val()?)?,
            "--cut-after-ms" => config.cut_after = ms(val()?)?,
            "--stall-probability" => config.stall_probability = prob(val()?)?,
            "--cut-probability" => config.cut_probability = prob(val()?)?,
            "--segment" => {
                let v = val()?;
                let (lo, hi) = v.split_once('-').unwrap_or((&v, &v));
                let (lo, hi) = (lo.parse::<usize>(), hi.parse::<usize>());
                match (lo, hi) {
                    (Ok(lo), Ok(hi)) if lo >= 1 && hi >= lo => {
                        config.segment_min = lo;
                        config.segment_max = hi;
                    }
                    _ => return Err(format!("--segment {v}: want MIN-MAX with 1 <= MIN <= MAX")),
                }
            }
            "--seed" => config.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--max-buffered" => {
                config.max_buffered = val()?.parse().map_err(|e| format!("--max-buffered: {e}"))?
            }
            "--exit-after" => {
                exit_after = Some(Duration::from_secs(
                    val()?.parse().map_err(|e| format!("--exit-after: {e}"))?,
                ))
            }
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    let upstream = upstream.ok_or("--upstream is required")?;
    require_loopback(listen, "listen address").map_err(|e| e.to_string())?;
    require_loopback(upstream, "upstream").map_err(|e| e.to_string())?;
    Ok(Args {
        listen,
        upstream,
        config,
        exit_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_loopback() {
        let lo: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let far: SocketAddr = "192.0.2.1:1".parse().expect("addr");
        assert!(require_loopback(lo, "x").is_ok());
        assert!(require_loopback("[::1]:1".parse().expect("addr"), "x").is_ok());
        assert!(require_loopback(far, "x").is_err());
        let args =
            |l: &str, u: &str| parse_args(["--listen", l, "--upstream", u].map(String::from));
        assert!(args("127.0.0.1:0", "127.0.0.1:9").is_ok());
        assert!(args("0.0.0.0:0", "127.0.0.1:9").is_err());
        assert!(args("127.0.0.1:0", "192.0.2.1:9").is_err());
    }

    #[test]
    fn parses_options() {
        let a = parse_args(
            "--listen 127.0.0.1:0 --upstream 127.0.0.1:9 --segment 2-5 --latency-ms 7 \
             --stall-probability 0.5 --seed 9 --exit-after 3"
                .split(' ')
                .map(String::from),
        )
        .expect("parses");
        assert_eq!((a.config.segment_min, a.config.segment_max), (2, 5));
        assert_eq!(a.config.latency, Duration::from_millis(7));
        assert_eq!(a.config.stall_probability, 0.5);
        assert_eq!(a.config.seed, 9);
        assert_eq!(a.exit_after, Some(Duration::from_secs(3)));
        for bad in [
            "--segment 0-3",
            "--segment 5-2",
            "--stall-probability 2",
            "--bogus",
        ] {
            let line = format!("--listen 127.0.0.1:0 --upstream 127.0.0.1:9 {bad}");
            assert!(
                parse_args(line.split(' ').map(String::from)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rng_is_seeded() {
        let mut a = Rng::new(5);
        let mut b = Rng::new(5);
        let xs: Vec<u64> = (0..8).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| r.below(7) < 7));
        assert!(!(0..1000).any(|_| r.chance(0.0)));
        assert!((0..1000).all(|_| r.chance(1.0)));
    }
}
