//! Orchestration of a run: setup, warm-up, the measured interval, sampling and the report.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::args::{Config, Transport};
use super::procfs;
use super::track::{Stats, Window};
use super::{wsdeflate, wsload, xhr};

/// Bound on one connection's handshake (TCP connect, WebSocket upgrade, `o` frame).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long sessions get to wind down after the run stops.
const GRACE: Duration = Duration::from_secs(10);
/// Open-file descriptors the load generator needs besides its sessions.
const SPARE_FDS: u64 = 64;

/// Where the run is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    /// Sessions are opening.
    Setup,
    /// Traffic flows; echoes in the window are counted.
    Run(Window),
    /// Sessions must end.
    Stop,
}

/// What every session shares.
pub(crate) struct Ctx {
    /// The run's configuration.
    pub cfg: Config,
    /// Limits handshakes in progress.
    pub permits: Semaphore,
    /// The run's phase.
    pub phase: watch::Receiver<Phase>,
}

/// Waits for the run to start: its window, or `None` if it stopped first.
pub(crate) async fn wait_run(phase: &mut watch::Receiver<Phase>) -> Option<Window> {
    match phase.wait_for(|p| !matches!(p, Phase::Setup)).await {
        Ok(p) => match *p {
            Phase::Run(w) => Some(w),
            _ => None,
        },
        Err(_) => None,
    }
}

/// Completes when the run stops (or its controller is gone).
pub(crate) async fn wait_stop(mut phase: watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| matches!(p, Phase::Stop)).await;
}

/// The current measurement window, if the run is in its traffic phase.
pub(crate) fn current_window(phase: &watch::Receiver<Phase>) -> Option<Window> {
    match *phase.borrow() {
        Phase::Run(w) => Some(w),
        _ => None,
    }
}

/// Figures sampled from `/proc` over the measured interval.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Server CPU seconds (user + system) over the interval.
    pub server_cpu_s: Option<f64>,
    /// The user-mode part of `server_cpu_s` (the rest is the kernel's, mostly sockets).
    pub server_user_s: Option<f64>,
    /// Server resident memory at the end of the interval (kB).
    pub rss_kb: Option<u64>,
    /// Load generator CPU seconds over the interval.
    pub client_cpu_s: Option<f64>,
    /// Problems reading `/proc`.
    pub errors: Vec<String>,
}

fn sample(pid: Option<u32>, window: Window) -> Sample {
    let mut s = Sample::default();
    std::thread::sleep(window.start.saturating_duration_since(Instant::now()));
    let server0 = pid.map(|p| procfs::cpu_times(Some(p)));
    let client0 = procfs::cpu_seconds(None);
    std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
    if let (Some(p), Some(before)) = (pid, server0) {
        match (before, procfs::cpu_times(Some(p))) {
            (Ok(a), Ok(b)) => {
                s.server_cpu_s = Some((b.0 + b.1 - a.0 - a.1).max(0.0));
                s.server_user_s = Some((b.0 - a.0).max(0.0));
            }
            (Err(e), _) | (_, Err(e)) => s.errors.push(e),
        }
        match procfs::rss_kb(p) {
            Ok(kb) => s.rss_kb = Some(kb),
            Err(e) => s.errors.push(e),
        }
    }
    if let (Ok(a), Ok(b)) = (client0, procfs::cpu_seconds(None)) {
        s.client_cpu_s = Some((b - a).max(0.0));
    }
    s
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The configuration it ran with.
    pub cfg: Config,
    /// All sessions' counters, merged.
    pub stats: Stats,
    /// Seconds taken to open the sessions.
    pub setup_s: f64,
    /// `/proc` figures over the measured interval.
    pub sample: Sample,
    /// Server resident memory before any session was opened (idle mode, kB).
    pub baseline_rss_kb: Option<u64>,
    /// Warnings (e.g. a low open-file limit).
    pub notes: Vec<String>,
}

impl Summary {
    /// Whether every session opened and no error was counted.
    pub fn ok(&self) -> bool {
        self.stats.opened == self.cfg.sessions as u64 && self.stats.error_count() == 0
    }

    /// Verified echoes per second over the measured interval.
    pub fn msgs_per_s(&self) -> f64 {
        self.stats.received as f64 / self.cfg.duration.as_secs_f64()
    }

    /// Verified echoes per server CPU-second.
    pub fn msgs_per_cpu_s(&self) -> Option<f64> {
        self.sample
            .server_cpu_s
            .filter(|c| *c > 0.0)
            .map(|c| self.stats.received as f64 / c)
    }

    /// Bytes on the wire per verified echo, client to server and server to client
    /// (`--permessage-deflate` runs only).
    pub fn wire_per_echo(&self) -> Option<(f64, f64)> {
        let s = &self.stats;
        (self.cfg.permessage_deflate && s.wire_echoes > 0).then(|| {
            let n = s.wire_echoes as f64;
            (s.wire_out as f64 / n, s.wire_in as f64 / n)
        })
    }

    /// Server CPU time per verified echo, in microseconds.
    pub fn server_cpu_us_per_msg(&self) -> Option<f64> {
        self.msgs_per_cpu_s().map(|m| 1e6 / m)
    }

    /// Server memory per open session in bytes (idle mode).
    pub fn rss_per_session(&self) -> Option<f64> {
        let (base, now) = (self.baseline_rss_kb?, self.sample.rss_kb?);
        (self.stats.opened > 0)
            .then(|| (now as f64 - base as f64) * 1024.0 / self.stats.opened as f64)
    }

    /// The human-readable report.
    pub fn human(&self) -> String {
        let c = &self.cfg;
        let mut o = String::new();
        if c.idle {
            let _ = writeln!(
                o,
                "sockjs-load: {} idle on {}: {} session(s) held {:.1} s",
                c.transport.name(),
                c.url,
                c.sessions,
                c.duration.as_secs_f64(),
            );
        } else {
            let _ = writeln!(
                o,
                "sockjs-load: {} echo on {}: {} session(s), {} B messages, window {}, \
                 {:.1} s (warm-up {:.1} s)",
                c.transport.name(),
                c.url,
                c.sessions,
                c.size,
                c.window,
                c.duration.as_secs_f64(),
                c.warmup.as_secs_f64(),
            );
        }
        let _ = writeln!(
            o,
            "  sessions open    {}/{} (setup {:.2} s)",
            self.stats.opened, c.sessions, self.setup_s
        );
        if !c.idle {
            let r = &self.stats.rtt;
            let _ = writeln!(
                o,
                "  echoes           {} verified ({:.0} msgs/s), {} sent",
                self.stats.received,
                self.msgs_per_s(),
                self.stats.sent
            );
            let _ = writeln!(
                o,
                "  round trip       p50 {}  p99 {}  max {}",
                ms(r.quantile(0.5)),
                ms(r.quantile(0.99)),
                ms(r.max())
            );
        }
        if c.permessage_deflate {
            let _ = writeln!(
                o,
                "  deflate          offered; negotiated by {}/{} session(s)",
                self.stats.deflated, self.stats.opened
            );
            if let Some((out, inn)) = self.wire_per_echo() {
                let _ = writeln!(
                    o,
                    "  wire per echo    {out:.1} B to the server, {inn:.1} B back \
                     ({} echoes, {} B out, {} B in)",
                    self.stats.wire_echoes, self.stats.wire_out, self.stats.wire_in
                );
            }
        }
        let _ = writeln!(
            o,
            "  frames           {} heartbeat(s), {} receiver re-open(s)",
            self.stats.heartbeats, self.stats.reconnects
        );
        let _ = write!(o, "  errors           {}", self.stats.error_count());
        if !self.stats.errors.is_empty() {
            let kinds: Vec<String> = self
                .stats
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = write!(o, " ({})", kinds.join(", "));
        }
        o.push('\n');
        for s in &self.stats.samples {
            let _ = writeln!(o, "    e.g. {s}");
        }
        if let Some(pid) = c.pid {
            let mut parts = Vec::new();
            if let Some(cpu) = self.sample.server_cpu_s {
                parts.push(format!(
                    "cpu {cpu:.2} s ({:.0}% of a core, {} in user mode)",
                    100.0 * cpu / c.duration.as_secs_f64(),
                    self.sample.server_user_s.filter(|_| cpu > 0.0).map_or(
                        "–".to_owned(),
                        |user| format!("{:.0}%", 100.0 * user / cpu)
                    ),
                ));
            }
            if let Some(m) = self.msgs_per_cpu_s() {
                parts.push(format!(
                    "{m:.0} msgs per server CPU-second ({:.1} µs per msg)",
                    1e6 / m
                ));
            }
            if let Some(kb) = self.sample.rss_kb {
                parts.push(format!("RSS {:.1} MiB", kb as f64 / 1024.0));
            }
            if parts.is_empty() {
                parts.push("no figures (see notes)".into());
            }
            let _ = writeln!(o, "  server pid {pid:<7}{}", parts.join(", "));
            if let (Some(base), Some(per)) = (self.baseline_rss_kb, self.rss_per_session()) {
                let _ = writeln!(
                    o,
                    "  idle memory      baseline {:.1} MiB, {:.1} KiB per session",
                    base as f64 / 1024.0,
                    per / 1024.0
                );
            }
        }
        if let Some(cpu) = self.sample.client_cpu_s {
            let _ = writeln!(o, "  load generator   cpu {cpu:.2} s");
        }
        for n in self.sample.errors.iter().chain(&self.notes) {
            let _ = writeln!(o, "  note: {n}");
        }
        o
    }

    /// The machine-readable line: `RESULT {json}`.
    pub fn result_line(&self) -> String {
        let c = &self.cfg;
        let r = &self.stats.rtt;
        let q = crate::util::json_quote;
        // JSON has no infinity or NaN (a per-message figure over zero messages).
        let num = |v: Option<f64>| {
            v.filter(|v| v.is_finite())
                .map_or("null".to_owned(), |v| format!("{v:.3}"))
        };
        let int = |v: Option<u64>| v.map_or("null".to_owned(), |v| v.to_string());
        let kinds: Vec<String> = self
            .stats
            .errors
            .iter()
            .map(|(k, v)| format!("{}:{v}", q(k)))
            .collect();
        let tags: Vec<String> = c
            .tags
            .iter()
            .map(|(k, v)| format!("{}:{}", q(k), q(v)))
            .collect();
        format!(
            "RESULT {{\"transport\":{},\"url\":{},\"idle\":{},\"sessions\":{},\"opened\":{},\
             \"size\":{},\"window\":{},\"duration_s\":{:.3},\"warmup_s\":{:.3},\"setup_s\":{:.3},\
             \"messages\":{},\"sent\":{},\"msgs_per_s\":{:.1},\"rtt_p50_us\":{},\"rtt_p99_us\":{},\
             \"rtt_max_us\":{},\"errors\":{},\"error_kinds\":{{{}}},\"heartbeats\":{},\
             \"reconnects\":{},\"server_pid\":{},\"server_cpu_s\":{},\"server_user_s\":{},\
             \"msgs_per_cpu_s\":{},\
             \"rss_kb\":{},\"baseline_rss_kb\":{},\"rss_per_session_bytes\":{},\
             \"client_cpu_s\":{},\"payload\":{},\"permessage_deflate\":{},\"deflated\":{},\
             \"wire_out_per_msg\":{},\"wire_in_per_msg\":{},\"server_cpu_us_per_msg\":{},\
             \"tags\":{{{}}}}}",
            q(c.transport.name()),
            q(&c.url),
            c.idle,
            c.sessions,
            self.stats.opened,
            c.size,
            c.window,
            c.duration.as_secs_f64(),
            c.warmup.as_secs_f64(),
            self.setup_s,
            self.stats.received,
            self.stats.sent,
            self.msgs_per_s(),
            r.quantile(0.5),
            r.quantile(0.99),
            r.max(),
            self.stats.error_count(),
            kinds.join(","),
            self.stats.heartbeats,
            self.stats.reconnects,
            int(c.pid.map(u64::from)),
            num(self.sample.server_cpu_s),
            num(self.sample.server_user_s),
            num(self.msgs_per_cpu_s()),
            int(self.sample.rss_kb),
            int(self.baseline_rss_kb),
            num(self.rss_per_session()),
            num(self.sample.client_cpu_s),
            q(if c.json { "json" } else { "letters" }),
            c.permessage_deflate,
            self.stats.deflated,
            num(self.wire_per_echo().map(|w| w.0)),
            num(self.wire_per_echo().map(|w| w.1)),
            num(self.server_cpu_us_per_msg()),
            tags.join(","),
        )
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// Runs the load test described by `cfg`.
pub fn run(cfg: Config) -> Result<Summary, String> {
    // Sessions must take turns fairly, or the tail latency measured is the load
    // generator's own.
    //
    // On one core (the benchmark pins the load generator to one), a current-thread
    // runtime. tokio's multi-thread runtime with its single worker left some sessions
    // unpolled for 0.5-4 s at 1000 WebSocket sessions, whatever the server: their echo
    // had arrived (a packet capture shows the server answering within microseconds) and
    // sat in the socket while the other sessions went on. That was the `max` column.
    //
    // On more cores, the multi-thread runtime, looking at its global queue every turn:
    // with the default, sessions woken past a worker's local queue wait there for up to
    // 31 turns (p99 130-160 ms at 1000 sessions against any server, 9 ms with this).
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let rt = if one_core {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .global_queue_interval(1)
            .enable_all()
            .build()
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    Ok(rt.block_on(run_async(cfg)))
}

async fn run_async(mut cfg: Config) -> Summary {
    let mut notes = Vec::new();
    if cfg.idle {
        cfg.warmup = Duration::ZERO;
    }
    let needed = cfg.sessions as u64 * cfg.transport.fds_per_session() + SPARE_FDS;
    if let Some(limit) = procfs::nofile_limit().filter(|l| *l < needed) {
        let msg = format!(
            "open-file limit {limit} is below the ~{needed} descriptors {} session(s) need: \
             raise it with `ulimit -n` (connections past it fail with EMFILE)",
            cfg.sessions
        );
        eprintln!("sockjs-load: warning: {msg}");
        notes.push(msg);
    }
    let baseline_rss_kb = match cfg.pid {
        Some(pid) if cfg.idle => match procfs::rss_kb(pid) {
            Ok(kb) => Some(kb),
            Err(e) => {
                notes.push(e);
                None
            }
        },
        _ => None,
    };

    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let ctx = Arc::new(Ctx {
        permits: Semaphore::new(cfg.connect_concurrency),
        phase: phase_rx,
        cfg: cfg.clone(),
    });
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.sessions);
    for idx in 0..cfg.sessions {
        let (ctx, ready) = (Arc::clone(&ctx), ready_tx.clone());
        tasks.push(match cfg.transport {
            Transport::WebSocket | Transport::RawWebSocket if cfg.permessage_deflate => {
                tokio::spawn(wsdeflate::session(ctx, idx, ready))
            }
            Transport::WebSocket | Transport::RawWebSocket => {
                tokio::spawn(wsload::session(ctx, idx, ready))
            }
            _ => tokio::spawn(xhr::session(ctx, idx, ready)),
        });
    }
    drop(ready_tx);

    let setup_deadline = tokio::time::Instant::from_std(t0 + cfg.setup_timeout);
    let (mut open, mut failed) = (0usize, 0usize);
    while open + failed < cfg.sessions {
        match tokio::time::timeout_at(setup_deadline, ready_rx.recv()).await {
            Ok(Some(true)) => open += 1,
            Ok(Some(false)) => failed += 1,
            Ok(None) => break,
            Err(_) => {
                notes.push(format!(
                    "setup timed out after {:.0} s with {open} session(s) open",
                    cfg.setup_timeout.as_secs_f64()
                ));
                break;
            }
        }
    }
    let setup_s = t0.elapsed().as_secs_f64();

    let start = Instant::now() + cfg.warmup;
    let window = Window {
        start,
        end: start + cfg.duration,
    };
    let (sample_tx, sample_rx) = oneshot::channel();
    let pid = cfg.pid;
    std::thread::spawn(move || {
        let _ = sample_tx.send(sample(pid, window));
    });
    let _ = phase_tx.send(Phase::Run(window));
    let sample = match tokio::time::timeout_at(
        tokio::time::Instant::from_std(window.end + GRACE),
        sample_rx,
    )
    .await
    {
        Ok(Ok(s)) => s,
        _ => Sample {
            errors: vec!["sampling /proc did not finish".into()],
            ..Sample::default()
        },
    };
    let _ = phase_tx.send(Phase::Stop);

    let mut stats = Stats::default();
    let deadline = tokio::time::Instant::now() + GRACE;
    for mut task in tasks {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(s)) => stats.merge(&s),
            Ok(Err(e)) => stats.error("panic", format!("session task failed: {e}")),
            Err(_) => {
                task.abort();
                stats.error("stuck", "session did not stop in time");
            }
        }
    }
    if stats.errors.contains_key("emfile") {
        notes.push(
            "hit the open-file limit (EMFILE/ENFILE): raise `ulimit -n` for the load generator \
             and the server"
                .into(),
        );
    }
    Summary {
        cfg,
        stats,
        setup_s,
        sample,
        baseline_rss_kb,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{Command, parse};
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    /// A WebSocket server on its own thread that answers each text message through `f`
    /// (`None`: no answer). Returns its address.
    fn ws_server(f: fn(&str) -> Option<String>) -> std::net::SocketAddr {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(l) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
                    return;
                };
                let _ = tx.send(l.local_addr());
                // Bounded: the test process ends the thread.
                while let Ok((s, _)) = l.accept().await {
                    tokio::spawn(async move {
                        let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                            return;
                        };
                        while let Some(Ok(Message::Text(t))) = ws.next().await {
                            if let Some(reply) = f(t.as_str()) {
                                if ws.send(Message::text(reply)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    });
                }
            });
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("server thread starts")
            .expect("server binds")
    }

    fn config(addr: std::net::SocketAddr, extra: &str) -> Config {
        let mut args = vec![format!("http://{addr}/echo")];
        args.extend(
            "--transport raw-websocket --duration 0.4 --warmup 0.1"
                .split_whitespace()
                .chain(extra.split_whitespace())
                .map(str::to_owned),
        );
        match parse(args) {
            Ok(Command::Run(c)) => *c,
            other => panic!("bad test config: {other:?}"),
        }
    }

    #[test]
    fn raw_echo_round_trips_with_own_figures() {
        let addr = ws_server(|t| Some(t.to_owned()));
        let mut cfg = config(addr, "--sessions 3 --window 4 --size 100 --tag cell=x");
        cfg.pid = Some(std::process::id());
        let s = run(cfg).expect("runs");
        assert!(s.ok(), "{}", s.human());
        assert_eq!(s.stats.opened, 3);
        assert!(s.stats.received > 0);
        assert!(s.sample.rss_kb.is_some() && s.sample.server_cpu_s.is_some());
        let line = s.result_line();
        assert!(line.starts_with("RESULT {"));
        assert!(
            crate::json::parse(&line["RESULT ".len()..]).is_ok(),
            "{line}"
        );
        assert!(line.contains("\"tags\":{\"cell\":\"x\"}"));
    }

    #[test]
    fn wrong_echoes_are_counted_not_fatal() {
        let addr = ws_server(|t| Some(format!("{t}!")));
        let s = run(config(addr, "--sessions 2")).expect("runs");
        assert!(!s.ok());
        assert!(
            s.stats.errors.get("content").is_some_and(|n| *n >= 2),
            "{}",
            s.human()
        );
        assert_eq!(s.stats.received, 0);
    }

    #[test]
    fn idle_sessions_open_and_hold() {
        let addr = ws_server(|_| None);
        let mut cfg = config(addr, "--idle --sessions 20");
        cfg.pid = Some(std::process::id());
        let s = run(cfg).expect("runs");
        assert!(s.ok(), "{}", s.human());
        assert_eq!(s.stats.opened, 20);
        assert!(s.rss_per_session().is_some());
        assert!(s.human().contains("per session"));
        // No messages: per-message figures are null, never a number JSON cannot hold.
        let line = s.result_line();
        assert!(
            crate::json::parse(&line["RESULT ".len()..]).is_ok(),
            "{line}"
        );
    }

    #[test]
    fn idle_sessions_echo_first_when_asked() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static ECHOED: AtomicUsize = AtomicUsize::new(0);
        let addr = ws_server(|t| {
            ECHOED.fetch_add(1, Ordering::Relaxed);
            Some(t.to_owned())
        });
        let s = run(config(addr, "--idle --echo-first --sessions 5 --size 300")).expect("runs");
        assert!(s.ok(), "{}", s.human());
        assert_eq!(s.stats.opened, 5);
        // One message each, outside the measured figures.
        assert_eq!(ECHOED.load(Ordering::Relaxed), 5);
        assert_eq!(s.stats.received, 0);
    }

    #[test]
    fn refused_connections_are_errors() {
        // A port nothing listens on: bind one, note it, let it go.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let s = run(config(free, "--sessions 2")).expect("runs");
        assert_eq!(s.stats.opened, 0);
        assert_eq!(s.stats.error_count(), 2);
    }
}
